"""The image builder's controllers: ImageTemplate (triggers, history, status) and
ImageBuild (one run, `run`)."""
