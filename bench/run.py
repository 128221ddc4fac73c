"""`make bench`: run every benchmark and write bench/results/*.json."""

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
BENCHMARKS = ["bench_resume.py", "bench_openai_throughput.py", "bench_endpoints.py", "bench_local_batching.py", "bench_serve.py",
              "bench_rm.py", "bench_sft.py", "bench_dpo.py", "bench_clean.py",
              "bench_iterate.py"]

if __name__ == "__main__":
    for name in sys.argv[1:] or BENCHMARKS:
        print(f"== {name}", flush=True)
        sys.argv = [name]
        runpy.run_path(str(HERE / name), run_name="__main__")
