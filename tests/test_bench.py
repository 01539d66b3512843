"""bench.py end to end on a tiny config: every variant measured, the costs it claims."""
import json

from tests.forkserver import run


def test_bench_runs_and_reports_what_each_design_costs(tmp_path):
    path = tmp_path / "bench.json"
    r = run("bench.py", "--image_size=16", "--patch_size=4", "--vit_n_embd=16", "--vit_n_head=2", "--n_embd=16", "--n_head=2",
            "--batch_size=2", "--repeats=1", "--text_len=5", "--decode_tokens=2", f"--json={str(path)!r}")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {row["variant"]: row for row in json.loads(path.read_text())["rows"]}
    assert set(rows) == {"baseline", "xattn", "concat", "sparsecut-xattn", "sparsecut-concat", "deepstack", "naive"}
    N, T = (16 // 2 // 4) ** 2, 5
    for name, row in rows.items():
        assert row["context"] == (5 * N if name == "naive" else N) + T, name
        assert row["flops"] == row["flops_vit"] + row["flops_fusion"] + row["flops_llm"]
        assert all(row[k] > 0 for k in ("forward_s", "train_step_s", "prefill_s", "params"))
    base = rows["baseline"]
    assert rows["sparsecut-concat"]["flops_llm"] == base["flops_llm"]     # shortcuts never lengthen the context
    assert rows["sparsecut-concat"]["flops_vit"] > 4 * base["flops_vit"]  # but the ViT sees 5 views
    assert rows["naive"]["flops_llm"] > 2 * base["flops_llm"]  # (the LM head, on text only, is large here)
    assert "sparsecut-concat" in r.stdout and "baseline absolute" in r.stdout


def test_bench_rejects_an_unknown_key():
    r = run("bench.py", "--bogus=1")
    assert r.returncode != 0 and "unknown config key 'bogus'" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bench_rejects_sizes_that_do_not_fit():
    r = run("bench.py", "--quick", "--n_head=5")  # 64 is not divisible by 5
    assert r.returncode != 0 and "not divisible by n_head=5" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bench_quick_has_the_kv_cache_column(tmp_path):
    path = tmp_path / "bench.json"
    r = run("bench.py", "--quick", "--image_size=16", "--patch_size=4", "--vit_n_embd=16", "--vit_n_head=2", "--n_embd=16",
            "--n_head=2", "--batch_size=2", "--text_len=5", "--decode_tokens=2", "--gen_tokens=6", f"--json={str(path)!r}")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(path.read_text())
    assert out["config"]["repeats"] == 2 and out["config"]["gen_tokens"] == 6  # quick's, but a given key wins
    rows = {row["variant"]: row for row in out["rows"]}
    assert set(rows) == {"baseline", "sparsecut-concat", "naive"}
    for row in rows.values():
        assert row["generate_cache_s"] > 0 and row["generate_recompute_s"] > 0
        assert row["kv_speedup"] == row["generate_recompute_s"] / row["generate_cache_s"]
    assert " kv" in r.stdout.splitlines()[1] and "with the KV cache" in r.stdout
