"""Commands that read a live cluster and Azure for a person: `azsnap snapshots`."""
