"""The SMF manifest templates; `vmbundle smf install` fills them in (vmbundle.smf_manifests)."""
