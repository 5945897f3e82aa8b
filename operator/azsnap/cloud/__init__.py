"""The one door to Azure: the interface the reconciler uses, its Azure SDK implementation and error mapping."""
