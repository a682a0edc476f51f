"""Backups that are proven to restore: streamed dumps of a project's volumes (and, in the same way, of any
subject that can dump to stdout and restore from stdin), compressed, checksummed, optionally encrypted,
written to a local directory or S3-compatible storage, verified by restoring them, kept by schedules with
retention rules. ``service.BackupService`` is the room's door."""
