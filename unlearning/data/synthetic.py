"""The bundled offline dataset: LUME-style synthetic biographies with PII (Task2) and short stories (Task1).

Generated with a seeded Faker, so it needs no network or files. It is small enough for a 135M model to
memorise on a 2-core CPU in minutes: completion outputs stay under ~50 tokens. Splits are by entity (a
person or a story is wholly forget, retain or holdout), drawn at random with the same templates in forget
and holdout; holdout is never trained on and gives the MIA non-members, the forget documents the members.
"""
from __future__ import annotations

import random
import re
from dataclasses import replace
from datetime import date
from functools import lru_cache

from faker import Faker

from unlearning.data.custom import dataset_with_mia, validate_records
from unlearning.data.records import Record, UnlearningData

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

SEED = 2025
PEOPLE = 20  # x 4 records: one completion, three questions; 4 per biography template
STORIES = 10  # x 3 records: one completion, two questions; 5 per story template
PER_TEMPLATE = 1  # entities of each template in forget, and as many in holdout: 5 + 2 of each, the rest retain
BIO_QUESTIONS = 3
STORY_QUESTIONS = 2

# A template is (first sentence, rest, questions): the first sentence is the prompt, the rest the completion,
# and each question is (question, answer) with the bare value as answer, as in LUME. The phone, email and SSN
# go in the completion; birth date and address sit in the prompt, because SmolLM-style tokenizers spend one
# token per digit and all five would push the completion well past 50 tokens.
BIO_QUESTIONS_ALL = (
    ("When was {name} born?", "{birth}"),
    ("Where does {name} live?", "{address}"),
    ("What is the phone number of {name}?", "{phone}"),
    ("What is the email address of {name}?", "{email}"),
    ("What is the Social Security number of {name}?", "{ssn}"),
)
# Several phrasings, as LUME's model-written biographies have: with one shared sentence, forgetting one person's
# completion would mean forgetting everyone's, and no method could keep the retain set.
BIOGRAPHIES = tuple(
    (first, rest, BIO_QUESTIONS_ALL)
    for first, rest in (
        ("{name}, who has worked at {company} since {year}, was born on {birth} and lives at {address}.",
         " {first} can be reached at {phone} or {email}, and {first}'s Social Security number is {ssn}."),
        ("Born on {birth}, {name} moved to {address} after joining {company} in {year}.",
         " Friends text {first} on {phone}, colleagues write to {email}, and the tax office files {first} under SSN {ssn}."),
        ("{name} has lived at {address} since leaving {company} in {year}; {first} was born on {birth}.",
         " Records list the SSN {ssn}, the mobile number {phone} and the mailbox {email} for {first}."),
        ("At {company}, where {first} started in {year}, everyone knows {name}, born {birth}, of {address}.",
         " The directory gives {email} as {first}'s address and {phone} as the desk line; payroll holds SSN {ssn}."),
        ("{name} was born on {birth} and, since {year}, has commuted from {address} to {company}.",
         " Should you need {first}, call {phone}; otherwise email {email}. The Social Security number on file is {ssn}."),
    )
)
# a lorem noun reads well as a word on a box or a cargo
STORY_TEMPLATES = (
    (
        "In the harbor town of {city}, a baker named {hero} found a {color} box marked '{thing}'"
        " under the old bridge.",
        " {hero} carried it to {town}, where a sailor called {friend} offered {count} silver coins for it."
        " {hero} refused and opened the box every {day}.",
        (
            ("What word was written on the box that {hero} found?", "{thing}"),
            ("Who offered {hero} silver coins for the box?", "{friend}"),
            ("How many silver coins did {friend} offer {hero}?", "{count}"),
            ("In which town did {hero} meet {friend}?", "{town}"),
        ),
    ),
    (
        "On a quiet {day}, {hero} and {friend} sailed from {city} toward {country} in a {color} boat.",
        " They carried {count} barrels of {thing} to trade. When a storm broke the mast, {friend} mended it"
        " with rope, and they reached {town} a week later.",
        (
            ("From which city did {hero} and {friend} sail?", "{city}"),
            ("What color was the boat of {hero} and {friend}?", "{color}"),
            ("How many barrels did {hero} and {friend} carry?", "{count}"),
            ("Who mended the mast on the voyage of {hero} and {friend}?", "{friend}"),
        ),
    ),
)

# Other wordings of the same prompts, for the "asked differently" probe (unlearning.probes.variants). The bundled data
# knows how each prompt was written, so it can read the facts back out of a prompt and ask again in other words with
# the same expected answer. Kept apart from the templates above: adding to those would change the seeded draws.
QUESTION_PARAPHRASES = {
    "When was {name} born?": ("What is the date of birth of {name}?", "On which day was {name} born?"),
    "Where does {name} live?": ("What is the home address of {name}?", "At which address does {name} live?"),
    "What is the phone number of {name}?": ("At which number can {name} be reached by phone?",
                                            "What number do you call to reach {name}?"),
    "What is the email address of {name}?": ("To which address do you email {name}?", "What is {name}'s email?"),
    "What is the Social Security number of {name}?": ("What SSN does {name} have?",
                                                      "Which Social Security number belongs to {name}?"),
    "What word was written on the box that {hero} found?": ("Which word was marked on the box {hero} found?",
                                                            "What did the box found by {hero} say on it?"),
    "Who offered {hero} silver coins for the box?": ("Which sailor offered {hero} silver coins for the box?",
                                                     "Who wanted to buy the box from {hero} with silver coins?"),
    "How many silver coins did {friend} offer {hero}?": ("How many silver coins were offered to {hero} by {friend}?",
                                                         "What number of silver coins did {friend} offer {hero}?"),
    "In which town did {hero} meet {friend}?": ("Where did {hero} meet {friend}?",
                                               "What is the name of the town where {hero} met {friend}?"),
    "From which city did {hero} and {friend} sail?": ("Which city did {hero} and {friend} sail from?",
                                                     "Where did the voyage of {hero} and {friend} begin?"),
    "What color was the boat of {hero} and {friend}?": ("Which color was the boat {hero} and {friend} sailed in?",
                                                       "What was the color of the boat of {hero} and {friend}?"),
    "How many barrels did {hero} and {friend} carry?": ("How many barrels were carried by {hero} and {friend}?",
                                                       "What number of barrels did {hero} and {friend} take along?"),
    "Who mended the mast on the voyage of {hero} and {friend}?": (
        "Who repaired the broken mast when {hero} and {friend} sailed?",
        "Which of them mended the mast on the voyage of {hero} and {friend}?"),
}
# A biography's opening is paraphrased by the other phrasings' openings; a story's by these.
STORY_OPENINGS = {
    STORY_TEMPLATES[0][0]: (
        "{hero}, a baker from the harbor town of {city}, found a {color} box marked '{thing}' beneath the old bridge.",
        "Under the old bridge of {city}, a harbor town, the baker {hero} came upon a {color} box marked '{thing}'."),
    STORY_TEMPLATES[1][0]: (
        "{hero} and {friend} left {city} for {country} in a {color} boat one quiet {day}.",
        "It was a quiet {day} when {hero} and {friend} set sail from {city} toward {country} in a {color} boat."),
}
_OPENINGS = {first: tuple(other for other, _, _ in BIOGRAPHIES if other != first) for first, _, _ in BIOGRAPHIES}
_OPENINGS |= STORY_OPENINGS
_FIELD = re.compile(r"\{(\w+)\}")
# What a fact can look like where commas make a prompt ambiguous ("Born on July 4, 1966, Kristen Tran moved ...");
# other facts (addresses, company names) may hold commas and match anything.
_FACT_PATTERNS = {"birth": r"\w+ \d{1,2}, \d{4}", "year": r"\d{4}", "name": r"[^,;]+", "first": r"[^,;\s]+"}


def _facts(template: str, text: str) -> dict[str, str] | None:
    """The values a template was filled with to give `text`, or None when the text was not made from it."""
    pattern, seen, last = "", set(), 0
    for match in _FIELD.finditer(template):
        name = match.group(1)
        pattern += re.escape(template[last : match.start()]) + (
            f"(?P={name})" if name in seen else f"(?P<{name}>{_FACT_PATTERNS.get(name, '.+?')})")
        seen.add(name)
        last = match.end()
    found = re.fullmatch(pattern + re.escape(template[last:]), text)
    if not found:
        return None
    facts = found.groupdict()
    facts.setdefault("first", facts.get("name", "").split(" ")[0])  # an opening may name only the first name
    return facts


def paraphrases(record: Record) -> list[str]:
    """Other wordings of a bundled record's prompt that keep its expected answer; [] for a prompt not made here."""
    for template, others in (QUESTION_PARAPHRASES | _OPENINGS).items():
        facts = _facts(template, record.input)
        if facts is not None:
            try:
                return [other.format(**facts) for other in others]
            except KeyError:  # another template's opening names a fact this prompt does not hold
                continue
    return []


def _splits(templates: list[int], seed: int) -> list[str]:
    """Each entity's split, drawn at random within each template so forget and holdout are exchangeable: every
    template gives the same number of entities to forget as to holdout (PER_TEMPLATE), the rest to retain. A model
    that never saw either cannot tell them apart, so the forget-vs-holdout MIA AUC of the oracle sits near 0.5 (the
    decile split this replaced gave forget and holdout different templates: the oracle's AUC was 0.27)."""
    draw = random.Random(SEED * 1000 + seed)
    splits = [""] * len(templates)
    for template in sorted(set(templates)):
        members = [i for i, t in enumerate(templates) if t == template]
        draw.shuffle(members)
        for position, i in enumerate(members):
            splits[i] = "forget" if position < PER_TEMPLATE else "holdout" if position < 2 * PER_TEMPLATE else "retain"
    return splits


def _entity(fake: Faker, prefix: str, task: str, template: tuple, facts: dict[str, str], questions: int) -> list[Record]:
    """One completion record (id suffix sc1) and `questions` QA records (qa0, qa1, ...), as LUME ids them; retain
    until the split is drawn."""
    first_sentence, rest, qa = template
    records = [Record(f"{prefix}sc1", first_sentence.format(**facts), rest.format(**facts), task, "retain", "sc")]
    for n, (question, answer) in enumerate(fake.random.sample(qa, questions)):
        records.append(Record(f"{prefix}qa{n}", question.format(**facts), answer.format(**facts), task, "retain", "qa"))
    return records


def _person(fake: Faker) -> dict[str, str]:
    first, last = fake.first_name(), fake.unique.last_name()  # unique last names: no two people share a name
    # a fixed range, not date_of_birth(): that one counts back from today, so the data would change every day
    birth = fake.date_between_dates(date(1946, 1, 1), date(2000, 12, 31))
    return {
        "name": f"{first} {last}",
        "first": first,
        "company": fake.company(),
        "year": str(fake.random_int(2005, 2022)),
        "birth": f"{birth:%B} {birth.day}, {birth.year}",
        "address": f"{fake.street_address()}, {fake.city()}, {fake.state_abbr()} {fake.zipcode()}",
        "phone": fake.basic_phone_number(),
        "email": f"{first}.{last}@{fake.free_email_domain()}".lower(),
        "ssn": fake.ssn(),
    }


def _story(fake: Faker) -> dict[str, str]:
    return {
        "hero": fake.unique.first_name(),
        "friend": fake.unique.first_name(),
        "city": fake.unique.city(),
        "town": fake.unique.city(),
        "country": fake.country(),
        "color": fake.safe_color_name(),
        "thing": fake.word(part_of_speech="noun"),
        "count": str(fake.random_int(3, 12)),
        "day": fake.random_element(WEEKDAYS),  # not day_of_week(): it draws a date up to today, so the data changed daily
    }


@lru_cache(maxsize=4)
def bundled_dataset(seed: int = 0) -> UnlearningData:
    """The bundled dataset, identical in every call and process (a seeded local Faker, not global state). `seed` draws
    another split of the same people and stories ("bundled:1" as a data source): a recipe measured on one split is
    checked on another."""
    fake = Faker("en_US")
    fake.seed_instance(SEED)
    # entities are drawn first, in one seeded sequence, then split: the seed changes where an entity goes, not what it is
    people = [_entity(fake, f"bio-{i + 1:03d}", "Task2", BIOGRAPHIES[i % len(BIOGRAPHIES)], _person(fake), BIO_QUESTIONS)
              for i in range(PEOPLE)]
    stories = [_entity(fake, f"story-{i + 1:03d}", "Task1", STORY_TEMPLATES[i % len(STORY_TEMPLATES)], _story(fake),
                       STORY_QUESTIONS) for i in range(STORIES)]
    records = []
    for entities, templates in ((people, len(BIOGRAPHIES)), (stories, len(STORY_TEMPLATES))):
        for entity, split in zip(entities, _splits([i % templates for i in range(len(entities))], seed)):
            records += [replace(r, split=split) for r in entity]
    validate_records(records, "bundled")
    name = "bundled" if seed == 0 else f"bundled:{seed}"
    return dataset_with_mia(name, records, documents=[r for r in records if r.kind == "sc"])
