"""sagedock.toolkit.formats: binary data formats shared by training and serving.

- :mod:`.recordio`: dmlc/MXNet RecordIO framing;
- :mod:`.protobuf`: SageMaker's ``aialgs.data.Record`` protobuf inside RecordIO
  (``application/x-recordio-protobuf``), as Python records or numpy/scipy batches.

numpy is imported by :mod:`.protobuf` only; scipy only when a sparse matrix is built or written.
"""
