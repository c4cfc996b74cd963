"""Every term the playground shows, in one place: one plain line each, and the Learn lesson that shows it (by title).

The Learn page lists them and opens one from a link (`learn?term=perplexity`), which the other pages use where a
term appears. Written for a learner who has never met the words.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    meaning: str
    lesson: str | None = None     # the Learn lesson that shows it live (its title), if one does


GLOSSARY: dict[str, Term] = {
    "token": Term("A piece of text the model reads as one unit (a word, a character or a subword), known by its id.",
                  "Text becomes tokens"),
    "vocabulary": Term("Every token a model knows; its size V is the number of rows of the embedding table.",
                       "Text becomes tokens"),
    "<unk>": Term("The token a word or character outside the vocabulary becomes: the model sees a blank there.",
                  "Text becomes tokens"),
    "BPE": Term("Byte-pair encoding: a tokenizer that glues frequent pairs of pieces into tokens, so common words are "
                "one token and rare ones are spelled from pieces (a \"·\" marks a space kept in front of a word).",
                "Text becomes tokens"),
    "embedding": Term("The learned vector (d_model numbers) a token's id picks from the embedding table.",
                      "Words as points"),
    "PCA": Term("Principal component analysis: the directions along which vectors differ most; \"PC1 (7% of "
                "variance)\" shows 7% of the differences.", "Words as points"),
    "d_model": Term("The width of the model: how many numbers describe each token at every layer."),
    "context": Term("The most tokens the model reads at once (block size); older tokens fall out of the window."),
    "attention": Term("How a token gathers information from earlier tokens: a weighted mix of their values.",
                      "Attention, derived"),
    "head": Term("One attention pattern with its own query, key and value matrices; a layer runs several at once.",
                 "Attention, derived"),
    "query / key / value": Term("Three vectors per token: a query asks, keys are matched against it (dot products), "
                                "values are what gets mixed.", "Attention, derived"),
    "causal mask": Term("The rule that a token may look only at tokens before it (scores of later ones are set to "
                        "minus infinity), so the model cannot read the word it must predict."),
    "softmax": Term("Turns scores into probabilities: e^score, divided by the sum, so they are positive and add up "
                    "to 1.", "Attention, derived"),
    "residual stream": Term("Each token's vector on its way up the model; every block adds its contribution to it.",
                            "What each layer adds"),
    "LayerNorm": Term("Rescales a vector to mean 0 and variance 1 (then a learned gain) before each part reads it; "
                      "RMSNorm, Llama's, skips the centring."),
    "MLP": Term("The part of a block that transforms each token on its own: widen, a non-linearity (GELU or "
                "SwiGLU), narrow again."),
    "logit lens": Term("Reading the residual stream after each layer with the final norm and output head, as if the "
                       "model stopped there.", "What each layer adds"),
    "tied LM head": Term("The output head reuses the embedding table: the same vectors read a token in and write it "
                         "out (fewer parameters, better with little data)."),
    "logits": Term("The model's raw score for every token of the vocabulary being next; softmax makes them "
                   "probabilities.", "From logits to one token"),
    "temperature": Term("Divides the logits before the softmax: below 1 sharpens the distribution, above 1 "
                        "flattens it.", "From logits to one token"),
    "top-k": Term("Sample only among the k most likely tokens.", "From logits to one token"),
    "top-p": Term("Sample only among the most likely tokens whose probabilities add up to p.",
                  "From logits to one token"),
    "greedy": Term("Always take the most likely next token: the same text every time.", "From logits to one token"),
    "beam width": Term("When filling several blanks, how many best partial fillings the search keeps from one blank "
                       "to the next.", "Scoring whole sentences"),
    "loss": Term("Cross-entropy: the average of -ln(probability the model gave the token that came next); lower is "
                 "better.", "What the loss means"),
    "ln V": Term("The loss of a uniform guess among V tokens: the line a model must get below first.",
                 "What the loss means"),
    "perplexity": Term("e^loss: as unsure as if choosing among this many equally likely tokens.",
                       "What the loss means"),
    "bits per character": Term("The loss per character in bits (ln 2 nats): compares models whose tokens differ."),
    "validation loss": Term("The loss on text held out of training: what the model learned that carries over.",
                            "What the loss means"),
    "overfitting": Term("Training loss keeps falling while validation loss rises: the model memorises its text "
                        "instead of learning what carries over."),
    "epoch": Term("One pass over all the training windows."),
    "batch": Term("The windows one optimiser step learns from together."),
    "learning rate": Term("How big a step the optimiser takes downhill at each update."),
    "warmup / cosine": Term("The learning-rate schedule: rise from 0 over the first steps, then fall along a cosine "
                            "curve."),
    "AdamW": Term("The optimiser: each weight's step is scaled by running averages of its gradients, with weight "
                  "decay pulling weights towards 0."),
    "dropout": Term("During training, zero a random share of values so the model cannot lean on any one of them."),
    "gradient accumulation": Term("Add up the gradients of several batches before one step: a bigger batch in the "
                                  "same memory."),
    "bf16": Term("A 16-bit number format that GPUs compute faster in; the weights stay 32-bit."),
    "RoPE": Term("Rotary positions: queries and keys are rotated by their position, so attention sees how far apart "
                 "two tokens are."),
    "induction head": Term("An attention head that finds the earlier place where the current token occurred and "
                           "copies what came after it.", "Watch a rule being learned"),
    "held-out accuracy": Term("The share of problems the model never trained on that it answers exactly.",
                              "Watch a rule being learned"),
    "instruction tuning": Term("Training a pretrained model further on example conversations (supervised "
                               "fine-tuning, SFT), so it answers questions instead of continuing text.",
                               "From a completer to an assistant"),
    "chat template": Term("How a conversation is written as one token sequence: <|user|> question <|end|> "
                          "<|assistant|> answer <|end|>. The model replies after <|assistant|> and stops at <|end|>.",
                          "From a completer to an assistant"),
    "loss mask": Term("Which targets the loss counts: in instruction tuning only the assistant's words and its "
                      "<|end|>; the question is read, never learned.", "From a completer to an assistant"),
}
