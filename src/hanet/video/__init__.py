"""hanet.video: video files -> per-frame features (``hanet extract``).

Modules (imported on demand; this package imports nothing heavy):

- ``hanet.video.decode``: PyAV decoding and time-based frame sampling -> uint8 RGB + timestamps;
- ``hanet.video.backbones``: ``get_backbone(name, weights=None, device='cpu', image_size=None)``
  (EfficientNet-Lite0..4, ResNet-50/101/152) behind one ``Backbone`` interface;
- ``hanet.data.features`` (beside the readers): the crash-safe HDF5 feature file and the merge of shards;
- ``hanet.video.extract``: ``extract_features(videos, out_path, ...) -> ExtractReport``;
- ``hanet.video.cli``: the ``hanet extract`` subcommand.

See docs/extract.md.
"""
