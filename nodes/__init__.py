"""User-facing supporting nodes: measuring change between images, loading folders of images."""
