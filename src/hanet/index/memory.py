"""How much memory search's record reads may hold, by design rather than by policing.

Nothing here changes or inspects the host process (no allocator settings, no ``/proc``): the
bounds follow from what a search reads.

* Record reads (:meth:`hanet.index.store.Collection.read_groups`) are split so that no one array
  passes :data:`READ_BYTES`.
* Records the compiled kernel multiplies in place are memory-mapped; each touched record is
  counted with the most a page fault can map around it (:data:`MAP_FOLIO_BYTES`), and past
  :data:`MAP_DROP_BYTES` counted the touched pages are unmapped again (they stay in the page cache,
  which the kernel reclaims as it needs). The count is an upper bound of what faults mapped, so
  the resident set the mapped records add stays below ``MAP_DROP_BYTES`` plus one query's count.
"""

from __future__ import annotations

#: record reads are split so that no one array passes this
READ_BYTES = 16 << 20

#: pages of memory-mapped records (:meth:`hanet.index.store.Collection.mapped_groups`) counted
#: before they are unmapped again
MAP_DROP_BYTES = 256 << 20

#: what :meth:`~hanet.index.store.Collection.release_mapped` counts a touched record as mapping
#: beyond its own bytes: a page-cache folio on each side of it, 2 MiB each at most (PMD size, the
#: largest folio the page cache makes on x86-64; 1.2 MiB per 170 KiB record was seen on ext4)
MAP_FOLIO_BYTES = 4 << 20
