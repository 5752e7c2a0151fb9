"""``python -m musicrec_assets.datasets.synthetic``: regenerate the bundled demo sample."""

import argparse

from musicrec_assets.datasets.synthetic import write_demo_sample

# parsed so that `--help` (or a typo) explains instead of rewriting the sample
argparse.ArgumentParser(
    prog="python -m musicrec_assets.datasets.synthetic",
    description="Regenerate the bundled demo sample (musicrec_assets/sample_data) from its seed.",
).parse_args()
for written in write_demo_sample().values():
    print(written)
