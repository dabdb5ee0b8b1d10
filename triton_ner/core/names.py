"""Names shared by the exporter, the model repository, the server launcher and the client.

Declared once here and imported everywhere, so a renamed tensor or model is a one-line change.
"""

DEFAULT_MODEL = "dslim/distilbert-NER"

# Labels of dslim/distilbert-NER (CoNLL-2003, IOB2). The fixture model uses the same ones.
CONLL_LABELS = ("O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")

# Models of the repository.
ENSEMBLE = "ner"
TEXT_STEP = "ner_text"  # tokenization, the calls of the model step, aggregation (one Python-backend step)
MODEL = "ner_model"

# Tensors.
TEXT = "TEXT"
ENTITIES = "ENTITIES"
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
LOGITS = "logits"

# Triton's default ports, which the launcher, the clients and the load tests take unless told otherwise.
HTTP_PORT = 8000
GRPC_PORT = 8001
METRICS_PORT = 8002

# Files inside the repository.
MANIFEST = "manifest.json"  # written last by the export: its presence means the repository is complete
TOKENIZER_DIR = "tokenizer"  # holds the tokenizer files and the checkpoint's config.json (labels)
# The model step's ``model_file`` that runs no model: the null runner, which measures the serving path alone.
NULL_MODEL_FILE = "null"
