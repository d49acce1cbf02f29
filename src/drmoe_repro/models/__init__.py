"""Models of the suite. Importing this package registers every model in `registry.MODELS`."""

from drmoe_repro.models import addgcn, cnnrnn, mlgcn, moe, plain, q2l, query  # noqa: F401  (registration side effects)
from drmoe_repro.models.registry import MODELS, DataInfo, build_model, register_model  # noqa: F401
