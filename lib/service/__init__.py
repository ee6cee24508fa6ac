"""The guest as an SMF instance: the manifests, and the instance's config/bundle property."""
