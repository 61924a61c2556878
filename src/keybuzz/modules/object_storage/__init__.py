"""Module 6, object storage: MinIO as the seed pins it, SeaweedFS as the maintained way out, behind the LB."""

from keybuzz.modules.object_storage.module import MODULE, ObjectStorageModule

__all__ = ["MODULE", "ObjectStorageModule"]
