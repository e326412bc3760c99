"""The one place that measures, used by the trainer, the benchmark and the tests alike.

- `saved`: bytes autograd saves for backward, deduplicated by storage, split into pair and other.
- `spread`: the spread summary of repeated samples (median, IQR, quartiles, p10/p90, min, max, mean, n)
  and the distribution-free interval of a median.
- `threads`: a context manager that pins torch's intra-op thread count for a block.
- `peak`: peak memory over a region (CUDA allocator peak, or Linux peak RSS reset at start).
"""
from .peak import PeakMemory
from .saved import SavedBytes, SavedBytesCounter, count_saved, storage_key
from .spread import SUMMARY_KEYS, iqr, median, median_interval, median_interval_coverage, summarize
from .threads import num_threads

__all__ = [
    "PeakMemory", "SUMMARY_KEYS", "SavedBytes", "SavedBytesCounter", "count_saved", "iqr", "median",
    "median_interval", "median_interval_coverage",
    "num_threads", "storage_key", "summarize",
]
