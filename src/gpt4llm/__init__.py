"""gpt4llm: instruction tuning with a teacher LLM, as in Peng et al. (2023), arXiv 2304.03277."""

__version__ = "0.1.0"
