"""Export bookkeeping: jobs, their partitions and the files they write."""

from exports.models.jobs import ExportFile, ExportJob, ExportPartition

__all__ = ["ExportFile", "ExportJob", "ExportPartition"]
