"""Which worker owns a partition: the consumer group's host map (each member's advertised URL ->
the partitions it was assigned) says. The partition itself comes from the topic's real partition
count in the cluster metadata (``faust Consumer.key_partition``, Kafka's default partitioner, as
every producer keys it), never from the partitions the map happens to hold.

The host map is keyed by URL, so two workers advertising the same URL collapse into one entry:
each then believes it owns users it does not. ``shared_url`` notices that from either worker.

>>> host_map = {"http://w1:6066": {"tx": [0, 2]}, "http://w2:6066": {"tx": [1, 3]}}
>>> [owner_url(host_map, "tx", partition) for partition in (0, 1)]
['http://w1:6066', 'http://w2:6066']
>>> owner_url({"http://w1:6066": {"tx": [0, 2]}}, "tx", 3) is None  # its owner is not in the map
True
>>> shared_url(host_map, "http://w1:6066", "tx", {0, 2}), shared_url(host_map, "http://w1:6066", "tx", {1})
(False, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

HostMap = Mapping[str, Mapping[str, Sequence[int]]]


def owner_url(host_map: HostMap, topic: str, partition: int) -> str | None:
    """The advertised URL of the worker assigned ``partition`` of ``topic``, or None when no worker
    in the map holds it."""
    return next((url for url, topics in host_map.items() if partition in topics.get(topic, ())), None)


def shared_url(host_map: HostMap, me: str, topic: str, mine: set[int]) -> bool:
    """Whether another worker advertises ``me`` too: the map's entry for this URL is not exactly
    the partitions of ``topic`` this worker was assigned."""
    return set(host_map.get(me, {}).get(topic, ())) != mine
