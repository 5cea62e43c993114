"""Domain events of the sanctions lists.

``list_version_activated`` is sent once a new list version has committed and become active,
with ``version_id``; screening subscribes to it to rescreen against the version's delta.
"""

from django.dispatch import Signal

list_version_activated = Signal()
