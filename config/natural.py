# The natural setting: the main job's recipe as it was measured (2400 stage-0 steps, 5000 text
# steps) with one change, stage 0 is never told about colour or texture. Low views learn what and
# where (shape, cell, centre, as in the main job); crops learn shape only (the main job's crops
# also learn colour and texture). No invariance term: whatever
# detail the main level keeps or loses, it keeps or loses by itself (unlike config/detail_at_depth.py,
# which makes it drop colour and texture on purpose). What the shortcuts are worth here, and what
# each level knows: docs/FINDINGS.md "The natural setting" (results/natural_*.json, probe_natural.json).
import os
exec(open(os.path.join(os.path.dirname(__file__), "shapes_cpu.py")).read())
out_dir = "out/natural"
question_types = ["colour", "shape", "count", "position", "texture"]  # as measured: no 'absent' (the main job asks it since)
vit_crop_targets = ["shape"]  # the only change: no colour/texture targets anywhere in stage 0
vit_iters, max_iters = 2400, 5000  # as measured: the main job's recipe then (it has a longer stage 0 since)
