"""
How much of this machine a run takes, and what it can do: the threads it uses, and the matmul
peak its MFU is measured against. Every script calls use_threads() right after reading its config.

Threads. torch's default, one per core, is the fastest on a quiet machine; but beside a program
that keeps cores busy, every parallel op waits for the thread that has no core (on 2 cores beside
a two-thread torch job, the main job ran 5x slower at 2 threads and 2.2x at 1; at 1 thread on a
quiet machine, 1.45x). So a script takes what is free when it starts: torch's default less the
cores other programs keep busy, read from /proc/stat over a quarter of a second. --threads=N or
OMP_NUM_THREADS decide instead. Threads change how sums are rounded: the same seed, machine and
thread count give the same numbers, so a resumed run goes on with the count it started with.

MFU. The peak is measured once at start (measure_peak_flops); a busy start reads it low,
and MFU then read 628%. So a step that beats it measures it again (Peak.mfu), and MFU never reads
above 100%.
"""
import os
import sys
import time

import torch


def measure_peak_flops(device, m, n, seconds=0.2):
    """This machine's matmul throughput at the model's dominant shape, (m x n) @ (n x 4n), in FLOP/s.
    On CUDA, bf16 as training uses it. MFU = the model's FLOPs per second / this. The best of
    four timings of at least `seconds` each: the first runs pay for warm-up, and machines are noisy."""
    cuda = str(device).startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    a = torch.randn(m, n, device=device, dtype=dtype)
    b = torch.randn(n, 4 * n, device=device, dtype=dtype)
    best = 0.0
    for _ in range(4):
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            if cuda:
                torch.cuda.synchronize()
            reps += 1
        best = max(best, 2 * m * n * 4 * n * reps / (time.perf_counter() - t0))
    return best


def cpu_times(path="/proc/stat"):
    """{cpu number: [user, nice, system, idle, iowait, irq, softirq, steal]}, clock ticks since boot."""
    with open(path) as f:
        rows = [line.split() for line in f if line.startswith("cpu") and line[3].isdigit()]
    return {int(r[0][3:]): [int(x) for x in r[1:9]] for r in rows}


def busy_between(before, after, cpus):
    """How many of `cpus` other programs kept busy between two cpu_times() readings (this process
    sleeps in between). Work at a lower priority (nice) does not count: it gives way to ours."""
    busy = 0.0
    for c in cpus:
        d = [b - a for a, b in zip(before[c], after[c])]
        if sum(d):
            busy += (sum(d) - d[1] - d[3] - d[4]) / sum(d)  # all but nice, idle and iowait
    return busy


def free_threads(default, busy, n_cpus):
    """torch's default count of threads, scaled by the share of the CPUs that is free; at least 1."""
    return max(1, min(default, round(default * (n_cpus - busy) / n_cpus)))


def choose_threads(seconds=0.25):
    """(threads, why) by what is free now: see free_threads. Not Linux: torch's default."""
    default = torch.get_num_threads()
    try:
        cpus = sorted(os.sched_getaffinity(0))  # the CPUs this process may run on
        before = cpu_times()
        time.sleep(seconds)
        busy = busy_between(before, cpu_times(), cpus)
    except (OSError, ValueError, KeyError, IndexError, AttributeError):  # no /proc/stat, no sched_getaffinity
        return default, "torch's default (how busy this machine is could not be read)"
    return free_threads(default, busy, len(cpus)), f"{busy:.1f} of {len(cpus)} cores busy with other work at start"


def started_with(out_dir):
    """The thread count the train.py run in out_dir started with (None if unknown), from its checkpoint:
    ckpt.pt, else vit.pt (an unfinished stage 0), as train.py resumes."""
    for p in (os.path.join(out_dir, "ckpt.pt"), os.path.join(out_dir, "vit.pt")):
        if os.path.isfile(p):
            try:  # mmap: only the small dict is read, not the weights
                return torch.load(p, map_location="cpu", weights_only=True, mmap=True).get("threads")
            except Exception:  # unreadable: the script says why when it loads it
                return None
    return None


def use_threads(threads, script, say=print, resume=""):
    """Sets torch's threads for this run, says in one line how many and why, and returns the count.
    threads: --threads, None to choose: OMP_NUM_THREADS if set, else choose_threads(). resume: the
    out_dir of a train.py run being continued: unless --threads is given, it goes on with the count
    it started with, and says so if that is not what it would choose now."""
    if threads is not None and (type(threads) is not int or threads < 1):
        sys.exit(f"{script}: threads={threads!r} must be a whole number >= 1 (leave it out: as many as are free)")
    if threads is not None:
        n, why = threads, f"--threads={threads}"
    elif os.environ.get("OMP_NUM_THREADS"):
        n, why = torch.get_num_threads(), f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    else:
        n, why = choose_threads()
        why += "; --threads=N to choose"
    was = started_with(resume) if resume and threads is None else None
    if was is not None and was != n:
        n, why = was, f"as this run started with, so that it gives the same numbers; now {n} would be used: {why}"
    torch.set_num_threads(n)
    say(f"{n} thread{'s' if n > 1 else ''} ({why})")
    return n


class Peak:
    """The matmul peak MFU is measured against: measured at start, and again when a step beats it (a
    busy start reads it low; the first time, then at most once every `every` seconds). The peak is
    then the best of the measurements and of that step, which ran at least that fast: MFU never
    reads above 100%."""

    def __init__(self, device, m, n, say=print, every=60.0):
        self.device, self.shape, self.say, self.every = device, (m, n), say, every
        self.flops, self.measured = measure_peak_flops(device, m, n), 0.0  # from the run's RNG, as always
        say(f"matmul peak on this machine: {self.flops / 1e9:.0f} GFLOP/s (MFU is measured against it)")

    def mfu(self, flops, seconds):
        """The share of the peak a step of `flops` that took `seconds` used."""
        rate = flops / seconds
        if rate > self.flops:
            again = 0.0
            if time.time() - self.measured > self.every:  # the first time, then at most once a minute (0.2 s)
                kind = torch.device(self.device).type
                with torch.random.fork_rng(devices=[] if kind == "cpu" else [torch.device(self.device).index or 0],
                                           device_type=kind):  # off the run's RNG: the run is unchanged
                    again = measure_peak_flops(self.device, *self.shape, seconds=0.05)
                self.measured = time.time()
                self.say(f"\nmatmul peak measured again, as a step ran {rate / 1e9:.3g} GFLOP/s: {again / 1e9:.3g} "
                         f"GFLOP/s; MFU is now measured against {max(rate, again) / 1e9:.3g}")
            self.flops = max(rate, again)
        return rate / self.flops
