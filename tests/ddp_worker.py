"""Run by test_engine under `torch.distributed.run --nproc_per_node 2`: the engine must train the same model on every rank."""
import hashlib
import sys

from unlearning.data import bundled_dataset
from unlearning.engine import TrainConfig, accelerator, train
from unlearning.models import tiny_model

data = bundled_dataset()
loaded = tiny_model()
config = TrainConfig(method="grad_diff", steps=3, learning_rate=1e-3, batch_size=2, precision="fp32")
result = train(loaded.model, loaded.tokenizer, data.split("forget")[:6], data.split("retain")[:6], config)
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in result.model.parameters())).hexdigest()
acc = accelerator()
print(f"rank={acc.process_index} world={acc.num_processes} type={acc.distributed_type} loss={result.history[0]['loss']:.6f} params={digest[:16]}")
sys.stdout.flush()
