"""Digests: many events of a type, one message per channel, exactly once.

- `rules`: the digest rule a platform applies to a type (its own `DigestRule`
  over the shipped default) and the windows it makes
- `buckets`: events join a bucket with one upsert; the due-work source that
  closes a bucket at its window's end and hands it to the pipeline
- `api`, `admin`: the open buckets, their counts and when they go out
"""
