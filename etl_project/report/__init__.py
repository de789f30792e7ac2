"""The daily settlement balance report: its columns, schemas, build and serialisation."""
