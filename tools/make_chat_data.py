"""Generate the instruction-tuning (SFT) data: data/chat_train.jsonl and data/chat_eval.jsonl.

This script generated both files; rerun it after changing a fact or a question:

    python tools/make_chat_data.py            # rewrite the two files
    python tools/make_chat_data.py --check    # regenerate in memory, exit 1 if the files on disk differ

The output is the same on every run (a fixed `random.Random(SEED)`, facts and questions in a fixed order).

Every fact below is one that data/training_data.txt states: each carries `support`, phrases copied from the corpus
(lower-cased) that say it, and the script stops if one is missing. Every word of every message occurs in the corpus,
so the word-level tokenizer built from it has no unknown words; and, but for the animal sounds in RARE_WORDS, each
is one of the corpus's VOCAB_SIZE most frequent tokens, so that a 1000-token vocabulary (the shipped model's) has it.

The evaluation questions (EVAL) are written separately from the training conversations, by hand, in wordings of
their own. They are never used for training or tuning: a training question equal to one of them, or containing one,
is dropped, and the script checks that no evaluation question appears in the training data or in the corpus. Each
asks about a fact the training conversations teach, so its score measures how well the model generalises.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import string
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python tools/make_chat_data.py`: the package lives one folder up
    sys.path.insert(0, str(ROOT))

from cutellm.tokenizer import SimpleWordTokenizer

CORPUS = ROOT / "data" / "training_data.txt"
DATA_DIR = ROOT / "data"
TRAIN_NAME, EVAL_NAME = "chat_train.jsonl", "chat_eval.jsonl"
SEED = 20240611
WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")  # the words of a text, as the tests count them
MAX_CONVERSATION_TOKENS = 60  # word and punctuation tokens of all messages, plus TOKENS_PER_MESSAGE each
MAX_EVAL_QUESTION_TOKENS = 24
TOKENS_PER_MESSAGE = 2  # a role marker and an end marker around each message
ANSWER_WORDS = (3, 12)  # one short sentence
TWO_TURN_SHARE = 0.3  # of all training conversations: about a third
# A word must be one of the tokens a vocabulary of this size keeps (the shipped model's: rarer words become <unk>)...
VOCAB_SIZE = 1000
# ...except animal sounds: the corpus names each once or twice, and "what does a cow say?" is too good a question to
# leave out. No evaluation answer depends on them.
RARE_WORDS = frozenset({"woof", "moo", "oink", "baa", "quack", "cluck", "neigh", "hoo", "roar", "buzz", "squeak"})


@dataclass(frozen=True)
class Fact:
    key: str
    group: str
    pairs: tuple[tuple[str, tuple[str, ...]], ...]  # (question, the answers it may get)
    support: tuple[str, ...]  # lower-case phrases of the corpus that state the fact (empty for small talk)


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def _subject(noun: str, article: str) -> str:
    return f"{_article(noun) if article == 'a' else article} {noun}"


def animal_fact(key: str, group: str, templates: tuple[tuple[str, str], ...], noun: str, answers: tuple[str, ...],
                support: tuple[str, ...]) -> Fact:
    """One fact about an animal, asked in each template's wording. `{A}` is the animal with the template's article,
    in the question and in the answers ("what does the cow eat?" -> "the cow eats grass.")."""
    pairs = []
    for template, article in templates:
        subject = _subject(noun, article)
        pairs.append((template.format(A=subject), tuple(a.format(A=subject) for a in answers)))
    return Fact(key, group, tuple(pairs), support)


def fact(key: str, group: str, questions: tuple[str, ...], answers: tuple[str, ...], support: tuple[str, ...],
         yes: tuple[str, ...] = ()) -> Fact:
    """A fact asked in hand-written wordings; a `yes` question gets "yes, " before the first answer."""
    pairs = [(q, answers) for q in questions] + [(q, (f"yes, {answers[0]}",)) for q in yes]
    return Fact(key, group, tuple(pairs), support)


# Question templates shared by the animals of one kind of fact; an evaluation question may use one of them for an
# animal it is never used with in training (that pairing is then dropped from training).
SOUND = (("what does {A} say?", "a"), ("what does {A} say?", "the"), ("what sound does {A} make?", "a"),
         ("what sound does {A} make?", "the"), ("tell me what {A} says.", "a"))
EATS = (("what does {A} eat?", "a"), ("what does {A} eat?", "the"), ("what food does {A} like?", "a"),
        ("tell me what {A} eats.", "a"), ("tell me what {A} eats.", "the"))
LEGS = (("how many legs does {A} have?", "a"), ("how many legs does {A} have?", "the"),
        ("how many legs has {A} got?", "a"), ("tell me how many legs {A} has.", "a"), ("{A} has how many legs?", "a"))
HAS = (("what does {A} have?", "a"), ("what does {A} have?", "the"), ("tell me what {A} has.", "a"),
       ("what has {A} got?", "a"))
HOME = (("where does {A} live?", "a"), ("where does {A} live?", "the"), ("tell me where {A} lives.", "a"),
        ("where is the home of {A}?", "a"), ("what is the home of {A}?", "the"))


def colour(key: str, subject: str, answer: str, support: tuple[str, ...], colour_word: str,
           plural: bool = False) -> Fact:
    be = "are" if plural else "is"
    questions = (f"what colour {be} {subject}?", f"tell me the colour of {subject}.",
                 f"what is the colour of {subject}?", f"do you know the colour of {subject}?")
    return fact(key, "colour", questions, (answer,), support, yes=(f"{be} {subject} {colour_word}?",))


def baby(key: str, animal: str, young: str, answer: str, support: tuple[str, ...]) -> Fact:
    questions = (f"what is a baby {animal} called?", f"what do we call a baby {animal}?",
                 f"tell me the name of a baby {animal}.", f"what is the name of a baby {animal}?",
                 f"what is {_article(young)} {young}?", f"tell me what {_article(young)} {young} is.")
    return fact(key, "baby", questions, (answer,), support)


def who(key: str, name: str, answers: tuple[str, ...], support: tuple[str, ...], pet: bool = False) -> Fact:
    """Who someone is; a pet is also asked "what is max?"."""
    questions = (f"who is {name}?", f"tell me who {name} is.", f"tell me about {name}.")
    questions += (f"what is {name}?",) if pet else ()
    return fact(key, "who", questions, answers, support, yes=(f"do you know {name}?",))


FACTS: tuple[Fact, ...] = (
    # Colours: "colours are all around us. grass is green. the sun is yellow..." and the kitchen's colours.
    colour("sky-blue", "the sky", "the sky is blue.", ("the sky is blue",), "blue"),
    colour("grass-green", "the grass", "the grass is green.", ("the grass is green", "grass is green."), "green"),
    colour("sun-yellow", "the sun", "the sun is yellow.", ("the sun is yellow",), "yellow"),
    colour("snow-white", "snow", "snow is white.", ("snow is white",), "white"),
    colour("apple-red", "the apple", "the apple is red.", ("the apple is red",), "red"),
    colour("banana-yellow", "a banana", "a banana is yellow.", ("a banana is yellow",), "yellow"),
    colour("carrot-orange", "the carrot", "the carrot is orange.", ("the carrot is orange",), "orange"),
    colour("peas-green", "the peas", "the peas are green.", ("the peas are green",), "green", plural=True),
    colour("grapes-purple", "the grapes", "the grapes are purple.", ("the grapes are purple",), "purple",
           plural=True),
    colour("milk-white", "milk", "milk is white.", ("the milk is white",), "white"),
    colour("sea-blue", "the sea", "the sea is blue.", ("the sea is blue",), "blue"),
    colour("clouds-white", "the clouds", "the clouds are white.", ("the clouds are white",), "white", plural=True),
    colour("frog-green", "a frog", "a frog is green.", ("it has green skin and long back legs",), "green"),
    colour("chicks-yellow", "the chicks", "the chicks are small and yellow.", ("chicks are small and yellow",),
           "yellow", plural=True),
    colour("fox-red", "a fox", "a fox has red fur.", ("a fox has red fur",), "red"),
    colour("bee-yellow", "a bee", "a bee is yellow and black.", ("a bee is yellow and black",), "yellow"),
    colour("pig-pink", "a pig", "a pig is pink.", ("it is pink or brown or black",), "pink"),
    colour("max-brown", "max", "max is a big brown dog.", ("max is a big brown dog",), "brown"),
    fact("snow-cat-white", "colour", ("what colour is snow the cat?", "tell me the colour of snow the cat."),
         ("snow is a white cat.",), ("snow is a white cat with blue eyes", "a little white cat")),
    fact("night-sky-dark", "colour", ("what colour is the sky at night?", "what colour is the night sky?",
                                      "what is the sky like at night?"),
         ("at night, the sky is dark.", "at night, the sky is black."),
         ("at night, the sky is dark", "at night, the sky is black")),

    # Animal sounds: "many animals make sounds. a dog says woof. a cat says meow. a cow says moo..."
    animal_fact("dog-woof", "sound", SOUND, "dog", ("{A} says woof.",), ("a dog says woof",)),
    animal_fact("cat-meow", "sound", SOUND, "cat", ("{A} says meow.",), ("a cat says meow",)),
    animal_fact("cow-moo", "sound", SOUND, "cow", ("{A} says moo.",), ("a cow says moo",)),
    animal_fact("pig-oink", "sound", SOUND, "pig", ("{A} says oink.",), ("a pig says oink",)),
    animal_fact("sheep-baa", "sound", SOUND, "sheep", ("{A} says baa.",), ("a sheep says baa",)),
    animal_fact("duck-quack", "sound", SOUND, "duck", ("{A} says quack.",), ("a duck says quack",)),
    animal_fact("hen-cluck", "sound", SOUND, "hen", ("{A} says cluck.",), ("a hen says cluck",)),
    animal_fact("horse-neigh", "sound", SOUND, "horse", ("{A} says neigh.",), ("a horse says neigh",)),
    animal_fact("owl-hoo", "sound", SOUND, "owl", ("{A} says hoo.",), ("an owl says hoo",)),
    animal_fact("lion-roar", "sound", SOUND, "lion", ("{A} says roar.",), ("a lion says roar",)),
    animal_fact("bee-buzz", "sound", SOUND, "bee", ("{A} says buzz.",), ("a bee says buzz",)),
    animal_fact("mouse-squeak", "sound", SOUND, "mouse", ("{A} says squeak.",), ("a mouse says squeak",)),

    # What animals eat: the animal pages ("the cow eats grass", "a horse eats grass and hay", ...).
    animal_fact("cow-grass", "eats", EATS, "cow", ("{A} eats grass.",), ("the cow eats grass",)),
    animal_fact("horse-hay", "eats", EATS, "horse", ("{A} eats grass and hay.",), ("a horse eats grass and hay",)),
    animal_fact("rabbit-carrots", "eats", EATS, "rabbit", ("{A} eats grass and carrots.",),
                ("they eat grass, carrots, and leaves",)),
    animal_fact("hen-seeds", "eats", EATS, "hen", ("{A} eats seeds and corn.",), ("a hen eats seeds, corn",)),
    animal_fact("mouse-cheese", "eats", EATS, "mouse", ("{A} eats seeds and cheese.",),
                ("it eats seeds, grain, and cheese",)),
    animal_fact("sheep-grass", "eats", EATS, "sheep", ("{A} eats grass.",), ("sheep eat grass, like cows do",)),
    animal_fact("monkey-fruit", "eats", EATS, "monkey", ("{A} eats fruit and nuts.",),
                ("monkeys eat fruit, leaves, and nuts", "they like bananas very much")),
    animal_fact("bear-honey", "eats", EATS, "bear", ("{A} eats fish and honey.",),
                ("a bear eats fish, berries, and honey",)),
    animal_fact("squirrel-nuts", "eats", EATS, "squirrel", ("{A} eats nuts and seeds.",),
                ("a squirrel eats nuts and seeds",)),
    animal_fact("frog-flies", "eats", EATS, "frog", ("{A} eats flies and bugs.",), ("a frog eats flies and bugs",)),
    animal_fact("owl-mice", "eats", EATS, "owl", ("{A} eats mice.",), ("an owl eats mice",)),
    animal_fact("spider-flies", "eats", EATS, "spider", ("{A} eats flies.",), ("a spider eats flies",)),
    animal_fact("goat-grass", "eats", EATS, "goat", ("{A} eats grass and leaves.",),
                ("they eat grass, leaves, and many plants",)),
    animal_fact("fox-mice", "eats", EATS, "fox", ("{A} eats mice and bugs.",), ("he ate mice, bugs, and berries",)),
    animal_fact("pig-corn", "eats", EATS, "pig", ("{A} eats corn and apples.",),
                ("pigs eat many kinds of food, like corn, apples, and bread",)),
    fact("cat-milk", "eats", ("what does the cat like?", "what does the cat drink?", "tell me what the cat likes.",
                              "what does snow like?", "does the cat like milk?"),
         ("the cat likes milk.",), ("the cat likes milk",)),

    # Legs and arms: "a spider has eight legs", "it has six legs and four wings" (the bee, the ant), ...
    animal_fact("spider-eight", "legs", LEGS, "spider", ("{A} has eight legs.",), ("a spider has eight legs",)),
    animal_fact("bee-six", "legs", LEGS, "bee", ("{A} has six legs.",), ("it has six legs and four wings",)),
    animal_fact("ant-six", "legs", LEGS, "ant", ("{A} has six legs.",), ("an ant is a tiny insect. it has six legs",)),
    animal_fact("cat-four", "legs", LEGS, "cat", ("{A} has four legs.",), ("a cat has four legs",)),
    animal_fact("cow-four", "legs", LEGS, "cow", ("{A} has four legs.",), ("a cow has four legs",)),
    animal_fact("crab-ten", "legs", LEGS, "crab", ("{A} has ten legs.",), ("it has a hard shell and ten legs",)),
    animal_fact("fish-none", "legs", LEGS, "fish", ("{A} has no legs.",), ("a fish lives in water. it has no legs",)),

    # What an animal has: the animal pages (the rabbit's long ears, the sheep's wool, ...).
    animal_fact("rabbit-ears", "has", HAS, "rabbit", ("{A} has long ears and soft fur.",),
                ("a rabbit is a small animal with long ears. it has soft fur",)),
    animal_fact("horse-legs", "has", HAS, "horse", ("{A} has long legs and runs very fast.",),
                ("it has long legs and can run very fast",)),
    animal_fact("owl-eyes", "has", HAS, "owl", ("{A} has big round eyes.",), ("it has big round eyes",)),
    animal_fact("sheep-wool", "has", HAS, "sheep", ("{A} has thick, soft wool.",), ("a sheep has thick, soft wool",)),
    animal_fact("bird-feathers", "has", HAS, "bird", ("{A} has feathers and wings.",),
                ("birds have feathers and wings",)),
    animal_fact("turtle-shell", "has", HAS, "turtle", ("{A} has a hard shell.",), ("a turtle has a hard shell",)),
    animal_fact("tiger-stripes", "has", HAS, "tiger", ("{A} has black stripes.",),
                ("it is orange with black stripes",)),

    # Homes: "an animal's home is called a habitat. a fish lives in water. a bird lives in a tree..."
    animal_fact("fish-water", "home", HOME, "fish", ("{A} lives in water.",), ("a fish lives in water",)),
    animal_fact("bird-tree", "home", HOME, "bird", ("{A} lives in a tree.",), ("a bird lives in a tree",)),
    animal_fact("rabbit-hole", "home", HOME, "rabbit", ("{A} lives in a hole.",), ("a rabbit lives in a hole",)),
    animal_fact("bear-cave", "home", HOME, "bear", ("{A} lives in a cave.",), ("a bear lives in a cave",)),
    animal_fact("cow-farm", "home", HOME, "cow", ("{A} lives on a farm.",), ("a cow lives on a farm",)),
    animal_fact("dog-house", "home", HOME, "dog", ("{A} lives in a house with people.",),
                ("a dog lives in a house with people",)),
    animal_fact("fox-forest", "home", HOME, "fox", ("{A} lives in the forest.",), ("the fox lived in the forest",)),
    animal_fact("monkey-trees", "home", HOME, "monkey", ("{A} lives in the trees.",), ("a monkey lives in the trees",)),
    animal_fact("frog-water", "home", HOME, "frog", ("{A} lives near the water.",), ("a frog lives near the water",)),
    animal_fact("crab-sea", "home", HOME, "crab", ("{A} lives by the sea.",), ("a crab lives by the sea",)),
    animal_fact("squirrel-trees", "home", HOME, "squirrel", ("{A} lives in the trees.",),
                ("it lives in the trees. a squirrel eats",)),
    animal_fact("duck-pond", "home", HOME, "duck", ("{A} lives on the pond.",), ("ducks swim on the pond all day",)),

    # Babies: "a puppy is a baby dog", "a kitten is a baby cat", "a calf is a baby cow", ...
    baby("dog-puppy", "dog", "puppy", "a puppy is a baby dog.", ("a puppy is a baby dog",)),
    baby("cat-kitten", "cat", "kitten", "a kitten is a baby cat.", ("a kitten is a baby cat",)),
    baby("cow-calf", "cow", "calf", "a calf is a baby cow.", ("a calf is a baby cow",)),
    baby("deer-fawn", "deer", "fawn", "a baby deer is called a fawn.", ("a baby deer is called a fawn",)),
    fact("duck-ducklings", "baby", ("what is a baby duck called?", "what do we call a baby duck?",
                                    "tell me the name of a baby duck.", "what are ducklings?"),
         ("baby ducks are called ducklings.",), ("baby ducks are called ducklings",)),
    fact("bird-chicks", "baby", ("what is a baby bird called?", "what do we call a baby bird?",
                                 "tell me the name of a baby bird.", "what are chicks?"),
         ("baby birds are called chicks.",), ("baby birds are called chicks",)),

    # Who is who: the opening story ("the dog was called max, and the cat was called snow"), "anna is tom's sister",
    # "he had a little sister named mia", "he went to school with his friend sam", "tom's dog rex", ...
    who("who-max", "max", ("max is the dog.", "max is a big brown dog."),
        ("the dog was called max", "max is a big brown dog"), pet=True),
    who("who-snow", "snow", ("snow is the cat.", "snow is a white cat."),
        ("the cat was called snow", "snow is a white cat"), pet=True),
    who("who-rex", "rex", ("rex is tom's dog.", "rex is a big brown dog."),
        ("tom's dog rex", "he had a big brown dog called rex"), pet=True),
    who("who-anna", "anna", ("anna is tom's sister.",), ("anna is tom's sister",)),
    who("who-tom", "tom", ("tom is anna's brother.",), ("anna is tom's sister",)),
    who("who-mia", "mia", ("mia is ben's little sister.",), ("he had a little sister named mia",)),
    who("who-ben", "ben", ("ben is mia's big brother.",), ("ben was her big brother",)),
    who("who-sam", "sam", ("sam is tom's friend.",), ("he went to school with his friend sam",)),
    who("who-lily", "lily", ("lily is tom's friend.",), ("tom's friends came to the party. anna, sam, lily",)),
    fact("dog-name", "who", ("what is the dog called?", "what is the name of the dog?", "tell me the name of the dog."),
         ("the dog is called max.",), ("the dog was called max",)),
    fact("cat-name", "who", ("what is the cat called?", "tell me the name of the cat.", "what do we call the cat?"),
         ("the cat is called snow.",), ("the cat was called snow",)),

    # The corpus's best-known scenes: "the cat sat on the mat", "the dog ran to the park", "the bird sang in the
    # tree", "the dog likes to play", "the boat is on the sea", "the fish swims in the water", ...
    fact("cat-mat", "scene", ("where does the cat sit?", "where did the cat sit?", "where is the cat?",
                              "tell me where the cat sat.", "what did the cat sit on?", "where does snow sit?"),
         ("the cat sat on the mat.",), ("the cat sat on the mat",)),
    fact("dog-park", "scene", ("where does the dog run?", "where did the dog run?", "where does the dog go?",
                               "tell me where the dog ran.", "where does max run?", "where did max go?"),
         ("the dog ran to the park.",), ("the dog ran to the park",)),
    fact("bird-sings", "scene", ("where does the bird sing?", "where did the bird sing?", "what does the bird do?",
                                 "tell me where the bird sang.", "where is the bird?"),
         ("the bird sang in the tree.",), ("the bird sang in the tree",)),
    fact("dog-play", "scene", ("what does the dog like?", "tell me what the dog likes.", "what does max like?",
                               "what does the dog want?"),
         ("the dog likes to play.",), ("the dog likes to play",), yes=("does the dog like to play?",)),
    fact("boat-sea", "scene", ("where is the boat?", "tell me where the boat is.", "where is the boat now?"),
         ("the boat is on the sea.",), ("the boat is on the sea",)),
    fact("fish-swims", "scene", ("where does the fish swim?", "what does the fish do?",
                                 "tell me where the fish swims."),
         ("the fish swims in the water.",), ("the fish swims in the water",)),
    fact("ducks-pond", "scene", ("where do the ducks swim?", "where are the ducks?", "tell me where the ducks swim."),
         ("the ducks swim on the pond.",), ("ducks swim on the pond",)),
    fact("cup-table", "scene", ("where did mom put the cup?", "where does mom put the cup?",
                                "tell me where mom put the cup.", "where is the cup?"),
         ("she put the cup on the table.",), ("mom put the cup on the table",)),
    fact("bees-honey", "scene", ("what do bees make?", "what does a bee make?", "tell me what bees make."),
         ("bees make honey.",), ("bees make honey",)),
    fact("hen-eggs", "scene", ("what do hens lay?", "what do the hens lay?", "what do hens give us?",
                               "tell me what hens lay."),
         ("the hens lay eggs.",), ("the hens lay eggs",)),
    fact("cow-milk", "scene", ("what does a cow give us?", "what does the cow give us?",
                               "tell me what a cow gives us."),
         ("a cow gives us milk.",), ("a cow gives us milk",)),
    fact("spider-web", "scene", ("what does a spider make?", "what does the spider make?",
                                 "tell me what a spider makes."),
         ("a spider makes a web.",), ("many spiders make webs", "a spider made a web")),
    fact("cows-barn", "scene", ("where do the cows sleep?", "where do cows go at night?",
                                "tell me where the cows sleep."),
         ("the cows sleep in the barn.",), ("at night, the cows go into the barn to sleep",)),
    fact("owl-day", "scene", ("where does the owl sleep?", "when does the owl sleep?",
                              "tell me where the owl sleeps."),
         ("in the day, the owl sleeps in a tree.",), ("in the day, the owl sleeps in a hole in a tree",)),
    fact("tom-school", "scene", ("where does tom go in the morning?", "where do tom and anna go?",
                                 "where did tom go after breakfast?"),
         ("tom goes to school with anna.",), ("then he went to school with anna",)),
    fact("mom-kitchen", "scene", ("where does mom make breakfast?", "who makes breakfast?",
                                  "tell me who made breakfast."),
         ("mom made breakfast in the kitchen.",), ("mom made breakfast in the kitchen",)),
    fact("dad-story", "scene", ("who read a story at bedtime?", "what did dad do at bedtime?",
                                "who read the story at bedtime?"),
         ("dad read a story at bedtime.",), ("dad read a story at bedtime",)),
    fact("grandma-pie", "scene", ("what did grandma make?", "what did grandma make for them?",
                                  "tell me what grandma made."),
         ("grandma made a big pie.",), ("grandma had made a big pie",)),
    fact("grandpa-garden", "scene", ("where does grandpa work?", "what does grandpa do in the garden?",
                                     "tell me what grandpa does in the garden."),
         ("grandpa plants seeds in the garden.",), ("in the garden, grandpa was working",
                                                     "then they put the seeds in the holes")),
    fact("park-ducks", "scene", ("what is at the park?", "what can you see at the park?",
                                 "tell me what is at the park."),
         ("there is a big pond with ducks.",), ("at the park, there was a big pond with ducks",)),

    # Weather, sky and seasons: "the sun is hot", "the rain is cold", "the moon is bright", "there are four seasons
    # in a year", "spring comes after winter", ...
    fact("sun-hot", "weather", ("is the sun hot?", "what is the sun like?", "tell me about the sun.",
                                "how is the sun today?"),
         ("the sun is hot.", "the sun is hot and bright."), ("the sun is hot", "the sun is hot and bright")),
    fact("rain-cold", "weather", ("is the rain cold?", "what is the rain like?", "tell me about the rain.",
                                  "is the rain warm?"),
         ("the rain is cold.", "the rain is cold and wet."), ("the rain is cold", "the rain is cold and wet")),
    fact("moon-bright", "weather", ("is the moon bright?", "what is the moon like?", "tell me about the moon.",
                                    "how is the moon tonight?"),
         ("the moon is bright.", "the moon is big and bright."),
         ("the moon is bright", "the moon was big and bright")),
    fact("snow-soft", "weather", ("what is snow like?", "tell me about the snow.", "is snow soft?"),
         ("the snow is white and soft.",), ("the snow is white and soft",)),
    fact("winter-cold", "weather", ("what is the weather like in winter?", "is it cold in winter?",
                                    "tell me about winter."),
         ("in the winter, it is cold.",), ("in the winter, it is cold",)),
    fact("summer-hot", "weather", ("what is the weather like in summer?", "is it hot in summer?",
                                   "tell me about summer."),
         ("in the summer, the sun is hot.",), ("in the summer, the sun is hot",)),
    fact("after-winter", "weather", ("what comes after winter?", "what season comes after winter?",
                                     "tell me what comes after winter."),
         ("spring comes after winter.",), ("spring comes after winter",)),
    fact("after-spring", "weather", ("what comes after spring?", "what season comes after spring?",
                                     "tell me what comes after spring."),
         ("summer comes after spring.",), ("summer comes after spring",)),
    fact("after-summer", "weather", ("what comes after summer?", "what season comes after summer?",
                                     "tell me what comes after summer."),
         ("autumn comes after summer.",), ("autumn comes after summer",)),
    fact("after-autumn", "weather", ("what comes after autumn?", "what season comes after autumn?",
                                     "tell me what comes after autumn."),
         ("winter comes after autumn.",), ("winter comes after autumn",)),
    fact("autumn-leaves", "weather", ("what do the leaves do in autumn?", "where do the leaves go in autumn?",
                                      "tell me about the leaves in autumn."),
         ("in the autumn, the leaves fall from the trees.",), ("in autumn, the leaves fall from the trees",)),
    fact("clouds-water", "weather", ("what are clouds made of?", "tell me what clouds are made of.",
                                     "what is in a cloud?"),
         ("clouds are made of tiny drops of water.",), ("clouds are made of tiny drops of water",)),
    fact("sun-star", "weather", ("what is the sun?", "is the sun a star?", "tell me what the sun is."),
         ("the sun is a star.",), ("the sun is a star",)),
    fact("rain-wear", "weather", ("what do we wear in the rain?", "what do we need in the rain?",
                                  "tell me what to wear in the rain."),
         ("we wear boots and carry an umbrella.",), ("we wear a raincoat and boots. we carry an umbrella",)),
    fact("owl-night", "weather", ("what does the owl do at night?", "tell me what the owl does at night."),
         ("an owl wakes up at night.",), ("an owl wakes up at night",)),

    # Food and meals: "the first meal is breakfast", "in the winter we eat bread and soup", "sugar and honey are
    # sweet. lemons are sour", "water is the best drink", ...
    fact("first-meal", "food", ("what do we eat in the morning?", "what do we have in the morning?",
                                "tell me what we eat in the morning."),
         ("we eat breakfast in the morning.",), ("the first meal is breakfast. we eat it in the morning",)),
    fact("middle-meal", "food", ("what do we eat in the middle of the day?", "when do we eat lunch?",
                                 "tell me what we eat in the middle of the day."),
         ("we eat lunch in the middle of the day.",),
         ("the second meal is lunch. we eat it in the middle of the day",)),
    fact("last-meal", "food", ("what do we eat in the evening?", "what do we have in the evening?",
                               "tell me what we eat in the evening."),
         ("we eat dinner in the evening.",), ("the last meal is dinner. we eat it in the evening",)),
    fact("winter-soup", "food", ("what do we eat in the winter?", "what do we eat on cold days?",
                                 "tell me what we eat in the winter."),
         ("in the winter we eat bread and soup.",), ("in the winter we eat bread and soup",)),
    fact("summer-fruit", "food", ("what do we eat in the summer?", "what do we eat on hot days?",
                                  "tell me what we eat in the summer."),
         ("in the summer we eat fruit and ice cream.",), ("in the summer we eat cool fruit", "eat ice cream")),
    fact("honey-sweet", "food", ("is honey sweet?", "what is honey like?", "tell me about honey."),
         ("honey is sweet and yellow.",), ("the honey was sweet and yellow",)),
    fact("best-drink", "food", ("what is the best drink?", "what should we drink?", "what do we drink when it is hot?"),
         ("water is the best drink.",), ("water is the best drink",)),
    fact("bread-flour", "food", ("how do we make bread?", "what is bread made of?", "tell me how to make bread."),
         ("we make bread with flour, water and salt.",),
         ("first, we put flour in a bowl. we add water, a little salt",)),
    fact("tom-eggs", "food", ("what does tom like for breakfast?", "what does tom eat in the morning?",
                              "tell me what tom likes for breakfast."),
         ("tom likes eggs best.",), ("tom likes eggs best",)),

    # Small talk: no corpus fact, only friendly words the corpus has.
    fact("hello", "chat", ("hello!", "hello", "hello there!", "hello, friend!"),
         ("hello! ask me about the cat, the dog or the farm.", "hello! what do you want to know?"), ()),
    fact("good-morning", "chat", ("good morning!", "good morning"),
         ("good morning! ask me about the animals.", "good morning! how can i help?"), ()),
    fact("good-night", "chat", ("good night!", "good night"), ("good night! sleep well.",), ()),
    fact("thanks", "chat", ("thank you!", "thank you very much.", "thank you."), ("i am happy to help.",), ()),
    fact("how-are-you", "chat", ("how are you?", "how are you today?"), ("i am very well, thank you.",), ()),
    fact("goodbye", "chat", ("goodbye!", "goodbye"), ("goodbye! have a nice day.",), ()),
    fact("who-are-you", "chat", ("who are you?", "what are you?"), ("i am your friend. ask me about the farm.",), ()),
    fact("what-can-you-do", "chat", ("what can you do?", "what do you know?"),
         ("i can tell you about animals, food and the weather.",), ()),

    # Questions the corpus has no answer to: the model should say so rather than make something up.
    fact("unknown", "unknown", ("what is the name of the king?", "how old is grandma?", "what time is it?",
                                "what is the name of the teacher?", "how far away is the moon?",
                                "what is the name of the farmer?", "how old is grandpa?"),
         ("i do not know.", "i do not know that."), ()),
)

# The evaluation set: (fact key, question, accepted words). Written by hand, apart from the training questions,
# in wordings that no training question uses; balanced over the kinds of fact.
EVAL: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # colours
    ("sky-blue", "what colour do you see in the sky?", ("blue",)),
    ("grass-green", "what colour is the grass in the park?", ("green",)),
    ("snow-white", "what colour is the snow?", ("white",)),
    ("apple-red", "what colour is an apple?", ("red",)),
    ("banana-yellow", "what colour is the banana?", ("yellow",)),
    ("carrot-orange", "what colour is a carrot?", ("orange",)),
    ("sun-yellow", "the sun is what colour?", ("yellow",)),
    ("milk-white", "tell me what colour milk is.", ("white",)),
    ("grapes-purple", "what colour are grapes?", ("purple", "green")),
    ("max-brown", "what colour is the dog max?", ("brown",)),
    ("night-sky-dark", "tell me the colour of the sky at night.", ("dark", "black")),
    ("frog-green", "what is the colour of the frog?", ("green",)),
    # sounds (only the one whose word a 1000-token vocabulary keeps)
    ("cat-meow", "what does a cat say to you?", ("meow",)),
    # what animals eat
    ("cow-grass", "what food does the cow like?", ("grass",)),
    ("horse-hay", "what food does the horse like?", ("grass", "hay")),
    ("rabbit-carrots", "what does the rabbit like to eat?", ("carrots", "grass")),
    ("mouse-cheese", "what does the mouse like to eat?", ("cheese", "seeds")),
    ("monkey-fruit", "what food does the monkey like?", ("fruit", "nuts", "bananas")),
    ("squirrel-nuts", "what does a squirrel like to eat?", ("nuts", "seeds")),
    ("frog-flies", "what food does the frog like?", ("flies", "bugs")),
    ("owl-mice", "tell me what food an owl likes.", ("mice",)),
    ("bear-honey", "what food does the bear like?", ("honey", "fish")),
    ("hen-seeds", "what does the hen like to eat?", ("seeds", "corn")),
    ("cat-milk", "what does the cat like to drink?", ("milk",)),
    # legs
    ("spider-eight", "tell me how many legs the spider has.", ("eight",)),
    ("bee-six", "how many legs has the bee got?", ("six",)),
    ("ant-six", "the ant has how many legs?", ("six",)),
    ("crab-ten", "how many legs has the crab got?", ("ten",)),
    ("cat-four", "the cat has how many legs?", ("four",)),
    # what an animal has
    ("rabbit-ears", "what has the rabbit got?", ("ears", "fur")),
    ("sheep-wool", "what has the sheep got?", ("wool",)),
    ("owl-eyes", "tell me what the owl has.", ("eyes",)),
    ("bird-feathers", "what has the bird got?", ("feathers", "wings")),
    ("turtle-shell", "tell me what the turtle has.", ("shell",)),
    # homes
    ("fish-water", "where is the home of the fish?", ("water",)),
    ("bear-cave", "what is the home of a bear?", ("cave",)),
    ("rabbit-hole", "where is the home of the rabbit?", ("hole",)),
    ("cow-farm", "what is the home of a cow?", ("farm",)),
    ("monkey-trees", "where is the home of the monkey?", ("trees", "tree")),
    ("bird-tree", "tell me where the bird lives.", ("tree", "trees", "nest")),
    ("fox-forest", "tell me where the fox lives.", ("forest",)),
    ("frog-water", "what is the home of a frog?", ("water", "pond")),
    # babies
    ("dog-puppy", "a baby dog is called what?", ("puppy",)),
    ("cat-kitten", "a baby cat is called what?", ("kitten",)),
    ("cow-calf", "what do you call a baby cow?", ("calf",)),
    ("deer-fawn", "what do you call a baby deer?", ("fawn",)),
    ("duck-ducklings", "what do you call baby ducks?", ("ducklings",)),
    # who is who
    ("who-max", "do you know who max is?", ("dog",)),
    ("who-snow", "do you know who snow is?", ("cat",)),
    ("who-rex", "who is rex to tom?", ("dog",)),
    ("who-anna", "who is anna to tom?", ("sister",)),
    ("who-mia", "who is mia to ben?", ("sister",)),
    ("who-sam", "do you know who sam is?", ("friend",)),
    ("dog-name", "what name does the dog have?", ("max",)),
    ("cat-name", "what name does the cat have?", ("snow",)),
    # scenes
    ("cat-mat", "where does the cat like to sit?", ("mat",)),
    ("dog-park", "where does the dog like to run?", ("park",)),
    ("bird-sings", "where does the bird like to sing?", ("tree",)),
    ("dog-play", "what does the dog like to do?", ("play",)),
    ("boat-sea", "where can you see the boat?", ("sea",)),
    ("fish-swims", "where does the fish like to swim?", ("water",)),
    ("ducks-pond", "where can you see the ducks?", ("pond",)),
    ("bees-honey", "what do the bees make?", ("honey",)),
    ("hen-eggs", "what does the hen give us?", ("eggs",)),
    ("cow-milk", "what do we get from a cow?", ("milk",)),
    ("cows-barn", "where do the cows go to sleep?", ("barn",)),
    ("tom-school", "where does tom go with anna?", ("school",)),
    ("cup-table", "what did mom put the cup on?", ("table",)),
    # weather and seasons
    ("sun-hot", "is the sun hot or cold?", ("hot",)),
    ("rain-cold", "is the rain hot or cold?", ("cold", "wet")),
    ("moon-bright", "how does the moon look at night?", ("bright",)),
    ("winter-cold", "what is it like in the winter?", ("cold",)),
    ("summer-hot", "what is it like in the summer?", ("hot",)),
    ("after-winter", "what is the season after winter?", ("spring",)),
    ("after-summer", "what is the season after summer?", ("autumn",)),
    ("autumn-leaves", "what do leaves do in the autumn?", ("fall",)),
    ("clouds-water", "what is a cloud made of?", ("water", "drops")),
    ("sun-star", "do you know what the sun is?", ("star",)),
    # food
    ("first-meal", "what do we eat when we get up?", ("breakfast",)),
    ("last-meal", "what do we eat before we go to bed?", ("dinner",)),
    ("winter-soup", "what do we eat when it is cold?", ("soup", "bread")),
    ("honey-sweet", "tell me what honey is like.", ("sweet",)),
    ("best-drink", "what is good to drink?", ("water",)),
)


def normalise(text: str) -> str:
    """How questions are compared: lower case, runs of whitespace as one space, no punctuation at the end."""
    return re.sub(r"\s+", " ", text.lower()).strip().rstrip(string.punctuation + " ")


def corpus_text(path: Path = CORPUS) -> str:
    """The corpus as training sees it: its '#' comment lines left out."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.startswith("#"))


def kept_tokens(corpus: str, size: int = VOCAB_SIZE) -> set[str]:
    """The tokens a word-level vocabulary of `size` keeps: the most frequent, ties alphabetical (as
    `SimpleWordTokenizer.from_text` ranks them), after its 3 special tokens."""
    counts = Counter(SimpleWordTokenizer._split(corpus))
    return {t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: size - 3]}


def tokens(text: str) -> int:
    return len(SimpleWordTokenizer._split(text))


def conversation_tokens(messages: list[dict[str, str]]) -> int:
    return sum(tokens(m["content"]) + TOKENS_PER_MESSAGE for m in messages)


def _conversation(*turns: tuple[str, str]) -> dict:
    messages = []
    for question, answer in turns:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


def build(corpus: str) -> tuple[list[dict], list[dict]]:
    """The training conversations and the evaluation lines, checked against the corpus."""
    facts = {f.key: f for f in FACTS}
    if len(facts) != len(FACTS):
        raise SystemExit("two facts share a key")
    eval_questions = [normalise(q) for _, q, _ in EVAL]

    def held_out(question: str) -> bool:
        # Equal to an evaluation question, or containing one ("and what ...?" around it): not for training.
        q = normalise(question)
        return any(e == q or e in q for e in eval_questions)

    pairs = {f.key: [(q, a) for q, a in f.pairs if not held_out(q)] for f in FACTS}
    rng = random.Random(SEED)

    # One single-turn conversation per training question, its answer drawn from the fact's answers.
    single = [_conversation((q, rng.choice(a))) for f in FACTS for q, a in pairs[f.key]]

    # Two-turn ones: a greeting then a question, a question then thanks, or two questions of one kind of fact.
    by_group: dict[str, list[str]] = {}
    for f in FACTS:
        by_group.setdefault(f.group, []).append(f.key)
    fact_groups = [g for g in by_group if g not in ("chat", "unknown")]
    greetings = pairs["hello"] + pairs["good-morning"]
    target = round(len(single) * TWO_TURN_SHARE / (1 - TWO_TURN_SHARE))
    seen = {json.dumps(c) for c in single}
    double: list[dict] = []
    for _ in range(50 * target):
        if len(double) >= target:
            break
        group = rng.choice(fact_groups)
        first_key, second_key = rng.sample(by_group[group], 2)
        q2, a2 = rng.choice(pairs[second_key])
        kind = rng.random()
        if kind < 0.2:
            q1, a1 = rng.choice(greetings)
        else:
            q1, a1 = rng.choice(pairs[first_key])
        if 0.2 <= kind < 0.35:
            q2, a2 = rng.choice(pairs["thanks"])
        elif kind >= 0.35 and rng.random() < 0.5:
            q2 = f"and {q2}"  # a follow-up, as people ask it
        if held_out(q2):
            continue
        conv = _conversation((q1, rng.choice(a1)), (q2, rng.choice(a2)))
        key = json.dumps(conv)
        if key in seen or conversation_tokens(conv["messages"]) > MAX_CONVERSATION_TOKENS:
            continue
        seen.add(key)
        double.append(conv)
    if len(double) < target:
        raise SystemExit(f"only {len(double)} two-turn conversations of {target}")
    train = single + double
    rng.shuffle(train)

    evals = [{"messages": [{"role": "user", "content": q}], "accept": list(accept)} for _, q, accept in EVAL]
    _validate(corpus, facts, pairs, train, evals)
    return train, evals


def _validate(corpus: str, facts: dict[str, Fact], pairs: dict, train: list[dict], evals: list[dict]) -> None:
    """Stop with a message when a constraint the data promises is broken."""
    problems = []
    flat = re.sub(r"\s+", " ", corpus.lower())
    counts = Counter(WORD_RE.findall(corpus.lower()))
    common = kept_tokens(corpus)
    for f in FACTS:
        problems += [f"{f.key}: the corpus does not say {s!r}" for s in f.support if s not in flat]
        if not pairs[f.key]:
            problems.append(f"{f.key}: every question is held out for evaluation")

    def words(text: str, where: str) -> None:
        for w in WORD_RE.findall(text.lower()):
            if counts[w] == 0:
                problems.append(f"{where}: {w!r} is not a word of the corpus")
            elif w not in common and w not in RARE_WORDS:
                problems.append(f"{where}: {w!r} is too rare in the corpus ({counts[w]}x) for {VOCAB_SIZE} tokens")

    train_questions = set()
    for conv in train:
        msgs = conv["messages"]
        if conversation_tokens(msgs) > MAX_CONVERSATION_TOKENS:
            problems.append(f"too long: {msgs}")
        for m in msgs:
            words(m["content"], m["content"])
            if m["role"] == "user":
                train_questions.add(normalise(m["content"]))
            elif not ANSWER_WORDS[0] <= len(WORD_RE.findall(m["content"])) <= ANSWER_WORDS[1]:
                problems.append(f"answer not 3-12 words: {m['content']!r}")
    seen = set()
    for (key, q, accept), line in zip(EVAL, evals):
        n = normalise(q)
        if key not in facts:
            problems.append(f"eval {q!r}: no fact {key!r}")
            continue
        if n in seen:
            problems.append(f"eval {q!r} twice")
        seen.add(n)
        if any(n in t for t in train_questions):
            problems.append(f"eval {q!r} is in the training questions")
        if n in flat:
            problems.append(f"eval {q!r} is in the corpus")
        if tokens(q) + TOKENS_PER_MESSAGE > MAX_EVAL_QUESTION_TOKENS:
            problems.append(f"eval {q!r} is too long")
        words(q, q)
        words(" ".join(accept), f"accept of {q!r}")
        taught = " ".join(a for _, answers in pairs[key] for a in answers)
        if not any(w in WORD_RE.findall(taught) for w in accept):
            problems.append(f"eval {q!r}: no accepted word is in the answers that {key!r} teaches")
        if any(w not in common for w in accept):
            problems.append(f"eval {q!r}: an accepted word is rare in the corpus")
    if problems:
        raise SystemExit("make_chat_data: " + "\n".join(problems))


def render(lines: list[dict]) -> str:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ from a regeneration")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where the two files live (default: data/)")
    args = parser.parse_args(argv)
    train, evals = build(corpus_text())
    outputs = {args.data_dir / TRAIN_NAME: render(train), args.data_dir / EVAL_NAME: render(evals)}
    if args.check:
        stale = [p for p, text in outputs.items() if not p.is_file() or p.read_bytes() != text.encode("utf-8")]
        for p in stale:
            print(f"{p} is out of date: run python tools/make_chat_data.py", file=sys.stderr)
        return 1 if stale else 0
    for p, text in outputs.items():
        p.write_bytes(text.encode("utf-8"))  # bytes: '\n' line ends on every platform
    two_turn = sum(len(c["messages"]) == 4 for c in train)
    print(f"wrote {len(train)} conversations ({two_turn} two-turn) from {len(FACTS)} facts, "
          f"and {len(evals)} evaluation questions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
