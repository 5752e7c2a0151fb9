"""``python -m musicrec_assets.datasets.synthetic``: regenerate the bundled demo sample."""

from musicrec_assets.datasets.synthetic import write_demo_sample

for written in write_demo_sample().values():
    print(written)
