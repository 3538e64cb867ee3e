"""A KV cache that writes into preallocated buffers instead of re-concatenating.

transformers' `DynamicLayer` grows keys and values with `torch.cat` at every
decode step, which copies the whole cache once per token: on a CPU, for 64 rows
of a 135M model, that copy costs a large share of the step. `BufferedLayer`
keeps the same interface (the model sees views of the filled part) but writes
each step in place, growing the buffer geometrically only when it is full.

For continuous batching a layer can also hide leading columns no row attends to any more
(`trim`), show more on the left (`widen`), overwrite finished rows with new prompts'
prefills (`write_rows`) and take rows that were prefilled apart (`append_rows`). `cache_kwarg`
names the keyword a model's forward takes the cache under (`cache` in transformers >= 5.2x,
`past_key_values` before).

Left out: sliding-window layers (models that have them keep the stock cache).
"""

from __future__ import annotations

from transformers.cache_utils import DynamicCache, DynamicLayer


class BufferedLayer(DynamicLayer):
    """Keys and values in a buffer; the model sees columns [start, length).

    `start` > 0 once leading columns were trimmed (no row attends to them any more), so a
    running batch whose old rows are replaced by new ones does not attend over an
    ever-growing history; the buffer is copied only when its end is reached.
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.start = 0
        self.length = 0

    def lazy_initialization(self, key_states, value_states) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        capacity = max(self.capacity, key_states.shape[-2])
        self._k = key_states.new_empty((*key_states.shape[:2], capacity, key_states.shape[-1]))
        self._v = value_states.new_empty((*value_states.shape[:2], capacity, value_states.shape[-1]))
        self.start = self.length = 0
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        if self.length + n > self._k.shape[2]:
            self._regrow(2 * (self.length - self.start + n))
        end = self.length + n
        self._k[:, :, self.length:end] = key_states
        self._v[:, :, self.length:end] = value_states
        self.length = end
        self._views()
        return self.keys, self.values

    def _regrow(self, capacity: int, margin: int = 0) -> None:
        """Copy the visible columns into a new buffer of `capacity`, after `margin` zeroed columns."""
        width = self.length - self.start
        capacity = max(capacity, margin + width)
        k = self._k.new_empty((*self._k.shape[:2], capacity, self._k.shape[-1]))
        v = self._v.new_empty((*self._v.shape[:2], capacity, self._v.shape[-1]))
        # Masked columns must still hold finite numbers: attention weights of 0 times NaN are NaN.
        k[:, :, :margin], v[:, :, :margin] = 0, 0
        k[:, :, margin:margin + width] = self._k[:, :, self.start:self.length]
        v[:, :, margin:margin + width] = self._v[:, :, self.start:self.length]
        self._k, self._v, self.start, self.length = k, v, 0, margin + width

    def _views(self) -> None:
        self.keys, self.values = self._k[:, :, self.start:self.length], self._v[:, :, self.start:self.length]

    def get_seq_length(self) -> int:
        return self.length - self.start if self.is_initialized else 0

    def trim(self, n: int) -> None:
        """Hide the first `n` visible columns (the caller drops them from its attention mask too)."""
        self.start = min(self.start + n, self.length)
        self._views()

    def widen(self, n: int) -> None:
        """Show `n` more columns on the left (finite, to be masked by the caller)."""
        if n <= self.start:  # trimmed columns still hold the finite values once written there
            self.start -= n
        else:
            self._regrow(self._k.shape[2] + n, margin=n)
        self._views()

    def write_rows(self, rows, key_states, value_states) -> None:
        """Overwrite batch rows `rows` with new ones, right-aligned in the visible columns."""
        n = key_states.shape[-2]
        self._k[rows, :, self.length - n:self.length] = key_states
        self._v[rows, :, self.length - n:self.length] = value_states
        self._views()

    def append_rows(self, key_states, value_states) -> None:
        """Add batch rows after the existing ones, right-aligned in the visible columns; the columns
        left of them hold zeros (finite, to be masked by the caller)."""
        import torch

        n = key_states.shape[-2]
        if n > self.length - self.start:
            raise ValueError(f"rows of {n} columns do not fit in {self.length - self.start} visible columns")
        shape = (key_states.shape[0], *self._k.shape[1:])
        k, v = self._k.new_zeros(shape), self._v.new_zeros(shape)
        k[:, :, self.length - n:self.length] = key_states
        v[:, :, self.length - n:self.length] = value_states
        self._k, self._v = torch.cat([self._k, k]), torch.cat([self._v, v])
        self._views()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self._k = self._k.repeat_interleave(repeats, dim=0)
            self._v = self._v.repeat_interleave(repeats, dim=0)
            self._views()

    def batch_select_indices(self, indices) -> None:
        if self.is_initialized:
            self._k, self._v = self._k[indices], self._v[indices]
            self._views()


def buffered_cache(config, capacity: int) -> DynamicCache | None:
    """A cache of `BufferedLayer`s for `config`'s model, or None when a layer slides (use the stock cache)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    if any("sliding" in t for t in (getattr(text, "layer_types", None) or [])) or getattr(text, "sliding_window", None):
        return None
    cache = DynamicCache()
    cache.layers = [BufferedLayer(capacity) for _ in range(text.num_hidden_layers)]
    cache.layer_class_to_replicate = None
    return cache


def cache_kwarg(model) -> str:
    """The forward keyword for the KV cache: `cache` where supported (`past_key_values` is deprecated)."""
    import inspect

    params = inspect.signature(type(model).forward).parameters  # the class's: instances may wrap forward
    return "cache" if "cache" in params else "past_key_values"


def is_buffered(cache) -> bool:
    return cache is not None and all(isinstance(layer, BufferedLayer) for layer in cache.layers)
