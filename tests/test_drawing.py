"""drawing.py: a picture is written whole or not at all."""
import os

import pytest

from drawing import canvas, save


def test_a_save_cut_off_keeps_the_previous_picture(tmp_path, monkeypatch):
    from PIL import Image
    path = tmp_path / "plot.png"
    old, _ = canvas(20, 10)
    save(old, str(path))
    new, d = canvas(30, 10)

    def killed(self, f, **kw):  # a Ctrl-C halfway through the PNG
        f.write(b"\x89PNG half")
        raise KeyboardInterrupt
    monkeypatch.setattr(Image.Image, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        save(new, str(path))
    monkeypatch.undo()
    assert Image.open(path).size == (20, 10) and os.listdir(tmp_path) == ["plot.png"]
    save(new, str(tmp_path / "sub" / "plot.jpg"))  # a folder made, the format from the extension
    assert Image.open(tmp_path / "sub" / "plot.jpg").format == "JPEG"
