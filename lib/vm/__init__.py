"""The guest's configuration: the vm.json model, its codec, and a bundle on disk (finding, loading, checking, saving)."""
