"""Apache Spark as a training and serving backend: the same steps as the local backend, on
frames a cluster holds (``backend: spark``). Removing Spark means deleting this folder."""
