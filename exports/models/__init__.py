"""Export bookkeeping: jobs, their partitions, the files they write and the resources
outside the compartment their output refers to."""

from exports.models.jobs import ExportFile, ExportJob, ExportPartition, ExportReference

__all__ = ["ExportFile", "ExportJob", "ExportPartition", "ExportReference"]
