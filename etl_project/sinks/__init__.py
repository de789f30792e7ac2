"""Where things go: the object store (local folder or S3), report files, the warehouse."""
