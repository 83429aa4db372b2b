"""The conf/ tree as code: the catalogue of groups and options (catalogue.py), what each group's
YAML may hold and who reads it (contracts.py), where a job's config comes from (source.py), the
resolvers it uses, validation before anything is built, the allowlisted `_target_` instantiate,
and Hydra's composition errors as one line."""
