"""The SYNTHETIC interview demo set of the reference wave 2019: 41 interviews, a code book
and coded segments, as the three tables and as one REFI-QDA `.qdpx` project.

What it follows (shared/spec/qualitative.md): the paper's design (18 children, 13 teachers,
7 parents, 3 grandparents; the survey's four schools; children about 30 minutes, teachers
60-90, parents and grandparents 40-60), its informant-code scheme (two characters for group
and school, two for the person: `INFORMANT_PREFIXES`), and a code book that carries the
themes the paper reports per hypothesis. Every excerpt is written here, fresh, from short
templates (never the paper's excerpts), and many of them plant names (children of the
survey's own roll, the informant's and a linked child's registry names, freshly drawn
classmates, teachers by surname and honorific, the school's name) that redaction must remove;
`DemoSet.planted` lists each one.

How informants are coded (`CODE_PLAN`) decides what the triangulation mart will say, and is
the synthetic part of the demo: H1's themes mostly support buffering, H2's mostly say why
teachers do not buffer, H3's mostly qualify the peers' buffering (distraction without
disclosure). The mart derives its labels from these codings; nothing in the pipeline knows
the plan.

One numpy Generator seeded with `SEED` draws everything; the GUIDs of the `.qdpx` are uuid5
of fixed names and the zip entries carry a fixed time, so `write_demo_set` writes the same
bytes every time (`lbc generate` writes the folder with the reference wave).
"""

from __future__ import annotations

import datetime as dt
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import polars as pl

from lbc_pipeline.lib.qualitative.staging import INFORMANT_PREFIXES
from lbc_pipeline.synthetic import names
from lbc_pipeline.synthetic.generate import (
    FIELDWORK,
    REFERENCE_INTERVIEWS,
    REFERENCE_SCHOOL_WINDOWS,
    Wave,
    generate_reference_wave,
)

SEED = 2019_41
WAVE = "2019"
FOLDER = "interviews"
QDPX_NAME = "interviews.qdpx"
QDA_NAMESPACE = "urn:QDA-XML:project:1.0"
ZIP_TIME = (2020, 7, 1, 0, 0, 0)
CREATED = "2020-07-01T00:00:00Z"
GUID_NAMESPACE = uuid.UUID("6f1c2d4e-9a7b-4c1e-8f00-201941000000")

# The paper's 41 interviews by group; teachers split into head teachers and other teachers.
ROLE_COUNTS = {"child": 18, "head_teacher": 7, "teacher": 6, "parent": 7, "grandparent": 3}
EXPECTED = REFERENCE_INTERVIEWS
SCHOOLS = ("S1", "S2", "S3", "S4")  # the reference wave's schools, SITE_SCHOOLS order
CHILDREN_PER_SCHOOL = {"S1": 4, "S2": 6, "S3": 4, "S4": 4}
HEAD_TEACHERS_PER_SCHOOL = {"S1": 1, "S2": 2, "S3": 2, "S4": 2}
TEACHERS_PER_SCHOOL = {"S1": 1, "S2": 2, "S3": 2, "S4": 1}
# Children were chosen by their parents' migration (most with a migrant mother).
CHILD_GROUPS = ("mother",) * 5 + ("both",) * 6 + ("father",) * 4 + ("none",) * 3
# The informant code's scheme (first two characters: group and school) is the pipeline's own rule.
DURATION_MINUTES = {"child": (24, 36), "teacher": (60, 90), "parent": (40, 60), "grandparent": (40, 60)}
DESTINATIONS = {"mother": "South Korea", "both": "South Korea", "father": "another city in China", "none": None}
LATER_VISIT_DAYS = 21  # parents and grandparents were met up to three weeks after their child

INTERVIEW_COLUMNS = ("interview_id", "informant_code", "role", "school_id", "child_migration_group",
                     "destination", "interview_date", "duration_min", "language", "consent", "interviewer")
INTERVIEW_EXTRAS = ("informant_name", "linked_child", "synthetic")
SEGMENT_COLUMNS = ("interview_id", "segment_id", "code", "text", "position")
CODEBOOK_COLUMNS = ("code", "label", "parent_code", "hypothesis", "stance", "definition")

# code, label, parent, hypothesis, stance, definition
CODEBOOK = (
    ("absence", "Parents' absence", None, None, "context",
     "How the child lives with a parent working away (background to every hypothesis)."),
    ("absence.missing_mother", "Missing the mother", "absence", None, "context",
     "Longing for the migrant mother, the moments it is felt most."),
    ("absence.mother_weighs_more", "Mother's absence weighs more", "absence", None, "context",
     "The mother's absence is felt as heavier than the father's."),
    ("belonging", "School belonging", None, "H1", "context",
     "School life and study as they bear on the parent's absence."),
    ("belonging.safe_place", "School as a safe place", "belonging", "H1", "supports",
     "Routine, classes and school life give a place where the child feels safe and occupied."),
    ("belonging.study_for_mother", "Studying for the mother", "belonging", "H1", "supports",
     "Studying hard makes the mother's absence worthwhile or brings her home sooner."),
    ("belonging.pressure", "Studying under the weight of the sacrifice", "belonging", "H1", "qualifies",
     "The tie between the mother's migration and school results is felt as pressure."),
    ("teachers", "Teacher-student relationships", None, "H2", "context",
     "How children and teachers relate."),
    ("teachers.authority", "Teacher as authority", "teachers", "H2", "contradicts",
     "Teachers act as authorities who discipline and grade, not as confidants."),
    ("teachers.distance", "Keeping distance from teachers", "teachers", "H2", "contradicts",
     "The child avoids talking to teachers about home or feelings."),
    ("teachers.informer_stigma", "Close to the teacher, shunned as an informer", "teachers", "H2", "contradicts",
     "A child seen close to a teacher risks being avoided by classmates."),
    ("teachers.care", "A teacher who cares", "teachers", "H2", "supports",
     "A teacher asks about the child's life and the child feels supported."),
    ("peers", "Peer support", None, "H3", "context",
     "Friends and classmates in the child's life."),
    ("peers.comfort_distraction", "Peers comfort and distract", "peers", "H3", "supports",
     "Playing and talking with friends lifts the child's mood."),
    ("peers.no_disclosure", "Not telling peers about the family", "peers", "H3", "qualifies",
     "The child keeps family matters, above all missing the mother, from friends."),
    ("peers.hide_from_mother", "Hiding troubles from the mother", "peers", "H3", "qualifies",
     "The child hides sadness or problems from the migrant mother to spare her."),
)

# Who is coded with what: code -> {role group: number of informants drawn}. Informants with a
# migrant mother are drawn first for the codes in MOTHER_CODES.
CODE_PLAN = {
    "absence.missing_mother": {"child": 11, "parent": 4, "grandparent": 3},
    "absence.mother_weighs_more": {"child": 3, "teacher": 3},
    "belonging.safe_place": {"child": 6, "teacher": 2, "grandparent": 1},
    "belonging.study_for_mother": {"child": 7, "teacher": 4, "parent": 5},
    "belonging.pressure": {"child": 3},
    "teachers.authority": {"teacher": 8},
    "teachers.distance": {"child": 11},
    "teachers.informer_stigma": {"child": 5, "teacher": 3},
    "teachers.care": {"child": 2, "teacher": 3},
    "peers.comfort_distraction": {"child": 8, "teacher": 3, "grandparent": 1},
    "peers.no_disclosure": {"child": 11, "teacher": 3, "grandparent": 1},
    "peers.hide_from_mother": {"child": 5, "parent": 3},
}
MOTHER_CODES = ("absence.missing_mother", "absence.mother_weighs_more", "belonging.study_for_mother",
                "belonging.pressure", "peers.hide_from_mother")

# Excerpt templates by code and speaker (child, teacher, family). Slots: {classmate} a child of
# the survey's roll at the same school, {friend} a freshly drawn name, {teacher} a surname with
# the honorific 老师, {teacher_en} "Teacher" and a romanised surname, {school} the school's
# name, {self} the informant's registry name, {child} the linked child's registry name.
TEMPLATES = {
    ("absence.missing_mother", "child"): (
        "At night I look at the photo on my phone. Mum left when I was in second grade and I still count the days.",
        "When it rains I think of her, because she used to walk me home with the big umbrella. Now {classmate}'s mother walks us both.",
        "On my birthday she called from Seoul. I said I was fine and then I cried in the bathroom.",
    ),
    ("absence.missing_mother", "family"): (
        "{child} asks every week when her mother is coming back. I tell her after the new year, every year.",
        "The boy keeps his mother's sweater on his bed. He does not let anyone wash it.",
        "Since she left, {child} eats less at dinner. He waits for the video call and then he is quiet.",
    ),
    ("absence.mother_weighs_more", "child"): (
        "Dad being away is normal, many dads work outside. When Mum went too, the house became empty.",
        "I can manage without my father around. Without my mother nobody knows what I like to eat.",
    ),
    ("absence.mother_weighs_more", "teacher"): (
        "In my experience the children whose mothers left change the most. With the fathers away they carry on much as before.",
        "You notice it in the notebooks. When a mother goes abroad the homework gets messy within a month; a father leaving rarely shows.",
    ),
    ("belonging.safe_place", "child"): (
        "At school the day has a shape. Morning reading, classes, lunch with {friend}. At home the afternoon is too long.",
        "I like coming early. The classroom is warm and {teacher_en} lets us water the plants before the bell.",
        "In class I do not have time to feel sad. It comes back when I get home and the flat is dark.",
    ),
    ("belonging.safe_place", "teacher"): (
        "For some of them {school} is the most stable place they have. They arrive first and leave last.",
        "A boy from my class, {classmate}, stays in the reading room until the guard locks up. School is where he feels held.",
    ),
    ("belonging.safe_place", "family"): (
        "School keeps her busy and that is good. On holidays she is restless and asks about her mother all day.",
    ),
    ("belonging.study_for_mother", "child"): (
        "Mum said she went to Korea so I can go to a good high school. If my marks are good it was worth it.",
        "If I get into the top class she can stop working there sooner. I practise maths every night for that.",
        "I send her my test results first, before I show {teacher}. She is happy for the whole call.",
    ),
    ("belonging.study_for_mother", "teacher"): (
        "The mothers tell me on the phone: I am over there for his schooling. The children know it, and some work very hard because of it.",
        "{classmate}'s mother sends money for extra classes and asks about rankings. For the girl, good results are a way to thank her.",
    ),
    ("belonging.study_for_mother", "family"): (
        "I went abroad to pay for {child}'s education. I told her: you study, I work, and then we are together again.",
        "Her mother calls and the first question is always about the exams. The girl studies for those calls.",
        "We agreed that when he reaches senior high his mother comes home. He knows the plan and works for it.",
    ),
    ("belonging.pressure", "child"): (
        "When my marks drop I feel I wasted her time over there. Sometimes I do not want to open the report card.",
        "Everyone says my mother suffers for my study. It makes exams heavy, like they are not only mine.",
    ),
    ("teachers.authority", "teacher"): (
        "Honestly, my job is to keep forty pupils on track. I check homework and discipline; I am not the one they confide in.",
        "At {school} a head teacher handles grades, attendance and parents' meetings. There is little room for private talks.",
        "They see me as the person who writes comments in the handbook. That is respect, not closeness.",
    ),
    ("teachers.distance", "child"): (
        "I would never tell {teacher} about home. Teachers are for lessons.",
        "If the teacher asks how things are, I say fine. She would call my grandma and make it bigger.",
        "Teachers are strict. I answer their questions and that is all, even when I feel bad.",
    ),
    ("teachers.informer_stigma", "child"): (
        "{friend} talked to the head teacher a lot and then nobody sat with him at lunch. They said he reports on us.",
        "If you stay after class to talk with the teacher, the others think you are telling on them.",
    ),
    ("teachers.informer_stigma", "teacher"): (
        "I tried to give one girl more attention, and her classmates started calling her my little spy. I stepped back.",
        "Children who come to my office too often lose friends. I have learned to talk to them in front of everyone or not at all.",
    ),
    ("teachers.care", "child"): (
        "{teacher} noticed I had no lunch money once and gave me her bread. I did not tell her why, but it helped.",
    ),
    ("teachers.care", "teacher"): (
        "I keep a list of the pupils whose parents are abroad and ask them about their weekend. A few of them open up over time.",
        "One boy, {classmate}, only started to talk after I asked him to help me carry books every Friday.",
    ),
    ("peers.comfort_distraction", "child"): (
        "After school I play basketball with {friend} and {classmate}. When we play I forget for a while.",
        "My deskmate makes jokes all the time. I laugh and the bad feeling goes away, at least until home.",
        "On weekends we go to the river with the bikes. Nobody talks about parents, we just ride.",
    ),
    ("peers.comfort_distraction", "teacher"): (
        "Friends matter enormously for these children. In the yard they look like everyone else; they are busy and laughing.",
        "When {classmate} is with her group she is lively. Alone at her desk she drifts off.",
    ),
    ("peers.comfort_distraction", "family"): (
        "Her friends come round and they do homework and watch videos. Those evenings she does not ask for her mother.",
    ),
    ("peers.no_disclosure", "child"): (
        "My friends do not know my mother is abroad. If they ask I say she is at work.",
        "I never say I miss her. {friend} would laugh or feel sorry for me, both are bad.",
        "We talk about games and teachers. Family things stay at home; boys do not talk about that.",
        "Even with my best friend I do not talk about my mum. She would not understand, her mum cooks dinner every day.",
    ),
    ("peers.no_disclosure", "teacher"): (
        "Their friends often have no idea. I only learned about {classmate}'s mother from the registration form.",
        "They protect that information. In class discussions about family they go silent or change the subject.",
    ),
    ("peers.no_disclosure", "family"): (
        "He has many friends but he never brings up his mother with them. He says it is nobody's business.",
    ),
    ("peers.hide_from_mother", "child"): (
        "When Mum calls I say everything is good. If I tell her I was sad she cries and then she cannot work.",
        "I did not tell her I was sick last month. She is far away, it would only worry her.",
    ),
    ("peers.hide_from_mother", "family"): (
        "On the phone {child} always says all is well. Later I hear from her grandmother that she had a hard week.",
        "The children hide things from their mother so she is not upset. I see it and I do not know whether to tell her.",
    ),
}
PROMPTS = {
    "absence": "Can you tell me about the time since your family member started working away?",
    "belonging": "What is school like for you these days?",
    "teachers": "How do you get along with the teachers?",
    "peers": "Who do you spend time with, and what do you talk about?",
}
TEACHER_SURNAMES_ZH = ("王", "李", "张", "刘", "陈", "金", "朴", "崔")
TEACHER_SURNAMES_EN = ("Wang", "Li", "Zhang", "Liu", "Chen", "Kim", "Park", "Choi")
README = """# Interviews of the reference wave 2019 — SYNTHETIC DATA

**Every file in this folder is synthetic**: not the interviews of Wang (2023), which are not
public, and no excerpt is the paper's. It is a demo set that follows the paper's design
(shared/spec/qualitative.md): 41 interviews (18 children, 13 teachers of whom 7 head
teachers, 7 parents, 3 grandparents) in the survey's four schools, dated inside the wave's
fieldwork window, informant codes in the paper's scheme, a code book carrying the themes the
paper reports for H1-H3, and {n_segments} coded segments written from templates.

| file | one row per | |
|---|---|---|
| `interviews.csv` | interview | the registry; `informant_name` (personal data, raw layer only), `linked_child` (the child a parent or grandparent speaks about), `synthetic` = yes |
| `segments.csv` | coded segment | `text` is the excerpt, with planted names that redaction must remove; `position` = start-end characters in the transcript |
| `codebook.csv` | code | `parent_code` gives the hierarchy; `hypothesis` and `stance` (supports, qualifies, contradicts, context) |
| `interviews.qdpx` | | the same project as a REFI-QDA 1.5 export: `project.qde` (sources with their variables, codes, coded selections) and the transcripts under `sources/` |

The pipeline reads the three tables when they are present (the `.qdpx` is then logged as not
read); a folder with only the `.qdpx` gives identical raw tables.

Regenerate (the same bytes): `lbc generate` (writes the reference wave and this folder), or
`python -m lbc_pipeline.synthetic.interviews --out data/raw/2019/interviews`.
"""


@dataclass(frozen=True)
class DemoSet:
    """The demo project: the three tables, each interview's transcript, and every planted name."""

    interviews: pl.DataFrame
    segments: pl.DataFrame
    codebook: pl.DataFrame
    transcripts: dict[str, str]
    planted: pl.DataFrame  # interview_id, segment_id, slot, value


def expected_counts() -> dict[str, int]:
    """What `wave.yaml` states under `interviews.expected` (teachers include head teachers)."""
    return dict(EXPECTED)


def role_group(role: str) -> str:
    return "teacher" if role in ("head_teacher", "teacher") else role


def _business_days(start: dt.date, end: dt.date) -> list[dt.date]:
    days = []
    day = start
    while day <= end:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def _registry(rng: np.random.Generator, survey: Wave) -> tuple[list[dict], pl.DataFrame]:
    """One dict per interview, before ids: role, school, group, date, duration, ..."""
    roll = survey.questionnaires.filter(pl.col("school_id").is_in(SCHOOLS)).select("school_id", "student_name")
    used_names: set[str] = set()

    def fresh_name(korean: bool, girl: bool) -> str:
        while True:
            name = names.draw_student_names(rng, np.array([int(korean)]), np.array([int(girl)]))[0]
            if name not in used_names:
                used_names.add(name)
                return name

    windows = dict(zip(SCHOOLS, REFERENCE_SCHOOL_WINDOWS))
    groups = list(rng.permutation(np.array(CHILD_GROUPS)))
    people = []
    for school in SCHOOLS:
        korean_school = school in ("S1", "S2")
        days = _business_days(*windows[school])
        for _ in range(CHILDREN_PER_SCHOOL[school]):
            group = str(groups.pop())
            korean = bool(rng.random() < (0.85 if korean_school else 0.1))
            people.append({
                "role": "child", "school_id": school, "child_migration_group": group,
                "destination": DESTINATIONS[group], "interview_date": days[int(rng.integers(len(days)))],
                "language": "Korean" if korean and rng.random() < 0.5 else "Chinese",
                "consent": "child_and_guardian", "informant_name": fresh_name(korean, bool(rng.random() < 0.5)),
                "linked_child": None,
            })
        for role, counts in (("head_teacher", HEAD_TEACHERS_PER_SCHOOL), ("teacher", TEACHERS_PER_SCHOOL)):
            for _ in range(counts[school]):
                people.append({
                    "role": role, "school_id": school, "child_migration_group": None, "destination": None,
                    "interview_date": days[int(rng.integers(len(days)))], "language": "Chinese",
                    "consent": "school" if rng.random() < 0.3 else "adult",
                    "informant_name": fresh_name(korean_school and rng.random() < 0.7, bool(rng.random() < 0.6)),
                    "linked_child": None,
                })
    children = [p for p in people if p["role"] == "child"]
    # Parents and grandparents were reached through the interviewed children.
    parent_of = rng.choice(len(children), ROLE_COUNTS["parent"], replace=False)
    left_with_grandparents = [i for i, c in enumerate(children)
                              if c["child_migration_group"] in ("both", "mother") and i not in set(parent_of)]
    grandparent_of = rng.choice(left_with_grandparents, ROLE_COUNTS["grandparent"], replace=False)
    for role, linked in (("parent", parent_of), ("grandparent", grandparent_of)):
        for index in linked:
            child = children[int(index)]
            later = child["interview_date"] + dt.timedelta(days=int(rng.integers(1, LATER_VISIT_DAYS + 1)))
            people.append({
                "role": role, "school_id": child["school_id"],
                "child_migration_group": child["child_migration_group"], "destination": child["destination"],
                "interview_date": min(later, FIELDWORK[1]), "language": child["language"], "consent": "adult",
                "informant_name": fresh_name(child["school_id"] in ("S1", "S2"), role == "grandparent" or rng.random() < 0.5),
                "linked_child": child,
            })
    for person in people:
        low, high = DURATION_MINUTES[role_group(person["role"])]
        person["duration_min"] = int(rng.integers(low, high + 1))
        person["interviewer"] = "R1" if rng.random() < 0.55 else "R2"
    return people, roll


def _assign_codes(rng: np.random.Generator, people: list[dict]) -> dict[int, list[str]]:
    """Which codes each informant (index into people) is coded with, per CODE_PLAN."""
    coded: dict[int, list[str]] = {i: [] for i in range(len(people))}
    for code, plan in CODE_PLAN.items():
        for group, k in plan.items():
            pool = [i for i, p in enumerate(people) if role_group(p["role"]) == group]
            if code in MOTHER_CODES:
                mother = [i for i in pool if people[i]["child_migration_group"] in ("mother", "both")]
                rest = [i for i in pool if i not in mother]
                order = list(rng.permutation(mother)) + list(rng.permutation(rest))
            else:
                order = list(rng.permutation(pool))
            for i in order[:k]:
                coded[int(i)].append(code)
    order = [c[0] for c in CODEBOOK]
    for i, codes in coded.items():
        if not codes:  # everyone speaks at least about the absence
            codes.append("absence.mother_weighs_more" if role_group(people[i]["role"]) == "teacher" else "absence.missing_mother")
        codes.sort(key=order.index)
    return coded


def _speaker(role: str) -> str:
    group = role_group(role)
    return "child" if group == "child" else "teacher" if group == "teacher" else "family"


def generate_demo_set(seed: int = SEED, survey: Wave | None = None) -> DemoSet:
    """The synthetic interview project of the reference wave (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    survey = survey or generate_reference_wave()
    people, roll = _registry(rng, survey)
    people.sort(key=lambda p: (p["interview_date"], p["school_id"], p["role"], p["informant_name"]))
    counters: dict[str, int] = {}
    for number, person in enumerate(people, start=1):
        prefix = INFORMANT_PREFIXES[role_group(person["role"])][person["school_id"]]
        counters[prefix] = counters.get(prefix, 0) + 1
        person["interview_id"] = f"INT{WAVE}-{number:02d}"
        person["informant_code"] = f"{prefix}{counters[prefix]:02d}"
    coded = _assign_codes(rng, people)
    school_names = dict(survey.distribution.select("school_id", "school_name").iter_rows())
    roll_by_school = {s: roll.filter(pl.col("school_id") == s)["student_name"].drop_nulls().to_list() for s in SCHOOLS}

    segments, planted, transcripts = [], [], {}
    for index, person in enumerate(people):
        interview_id = person["interview_id"]
        transcript = ""
        for k, code in enumerate(coded[index], start=1):
            segment_id = f"{interview_id}-S{k:02d}"
            variants = TEMPLATES[(code, _speaker(person["role"]))]
            template = variants[int(rng.integers(len(variants)))]
            fills = {
                "classmate": roll_by_school[person["school_id"]][int(rng.integers(len(roll_by_school[person["school_id"]])))],
                "friend": names.draw_student_names(rng, np.array([int(rng.random() < 0.5)]), np.array([int(rng.random() < 0.5)]))[0],
                "teacher": TEACHER_SURNAMES_ZH[int(rng.integers(len(TEACHER_SURNAMES_ZH)))] + "老师",
                "teacher_en": "Teacher " + TEACHER_SURNAMES_EN[int(rng.integers(len(TEACHER_SURNAMES_EN)))],
                "school": school_names[person["school_id"]],
                "self": person["informant_name"],
                "child": (person["linked_child"] or {}).get("informant_name", ""),
            }
            text = template.format(**fills)
            for slot, value in fills.items():
                if "{" + slot + "}" in template:
                    planted_value = value.removeprefix("Teacher ") if slot == "teacher_en" else value
                    planted.append({"interview_id": interview_id, "segment_id": segment_id, "slot": slot,
                                    "value": planted_value})
            question = "Q: " + PROMPTS[code.split(".")[0]] + "\nA: "
            start = len(transcript) + len(question)
            transcript += question + text + "\n\n"
            segments.append({"interview_id": interview_id, "segment_id": segment_id, "code": code, "text": text,
                             "position": f"{start}-{start + len(text)}"})
        transcripts[interview_id] = transcript

    interviews = pl.DataFrame([
        {
            **{c: person.get(c) for c in INTERVIEW_COLUMNS},
            "interview_date": person["interview_date"].isoformat(),
            "duration_min": str(person["duration_min"]),
            "informant_name": person["informant_name"],
            "linked_child": person["linked_child"]["informant_code"] if person["linked_child"] else None,
            "synthetic": "yes",
        }
        for person in people
    ], schema={c: pl.String for c in INTERVIEW_COLUMNS + INTERVIEW_EXTRAS})
    codebook = pl.DataFrame([dict(zip(CODEBOOK_COLUMNS, row)) for row in CODEBOOK],
                            schema={c: pl.String for c in CODEBOOK_COLUMNS})
    return DemoSet(
        interviews=interviews,
        segments=pl.DataFrame(segments, schema={c: pl.String for c in SEGMENT_COLUMNS}),
        codebook=codebook,
        transcripts=transcripts,
        planted=pl.DataFrame(planted, schema={c: pl.String for c in ("interview_id", "segment_id", "slot", "value")}),
    )


# --------------------------------------------------------------------------- REFI-QDA
def guid(kind: str, name: str) -> str:
    """A stable GUID for an element of the demo project."""
    return str(uuid.uuid5(GUID_NAMESPACE, f"{kind}:{name}"))


def _q(tag: str) -> str:
    return f"{{{QDA_NAMESPACE}}}{tag}"


def code_description(row: dict) -> str:
    """The Description of a REFI-QDA Code: REFI codes carry a name only, so the code book's
    label, hypothesis, stance and definition go in `key: value` lines."""
    return "\n".join(f"{key}: {row[key] or ''}" for key in ("label", "hypothesis", "stance", "definition"))


def project_xml(demo: DemoSet) -> bytes:
    """`project.qde` of the demo project (REFI-QDA 1.5, namespace urn:QDA-XML:project:1.0)."""
    ET.register_namespace("", QDA_NAMESPACE)
    project = ET.Element(_q("Project"), {
        "name": f"Interviews {WAVE} (SYNTHETIC)", "origin": "lbc_pipeline.synthetic.interviews",
        "creationDateTime": CREATED,
    })
    users = ET.SubElement(project, _q("Users"))
    for name in sorted(demo.interviews["interviewer"].unique().to_list()):
        ET.SubElement(users, _q("User"), {"guid": guid("user", name), "name": name, "id": name})
    codes = ET.SubElement(ET.SubElement(project, _q("CodeBook")), _q("Codes"))
    elements: dict[str, ET.Element] = {}
    for row in demo.codebook.iter_rows(named=True):
        parent = elements[row["parent_code"]] if row["parent_code"] else codes
        element = ET.SubElement(parent, _q("Code"), {
            "guid": guid("code", row["code"]), "name": row["code"], "isCodable": "true"})
        ET.SubElement(element, _q("Description")).text = code_description(row)
        elements[row["code"]] = element
    variables = ET.SubElement(project, _q("Variables"))
    registry_columns = [c for c in demo.interviews.columns if c != "interview_id"]
    types = {"duration_min": "Integer", "interview_date": "Date"}
    for column in registry_columns:
        ET.SubElement(variables, _q("Variable"), {
            "guid": guid("variable", column), "name": column, "typeOfVariable": types.get(column, "Text")})
    sources = ET.SubElement(project, _q("Sources"))
    by_interview = demo.segments.partition_by("interview_id", as_dict=True, maintain_order=True)
    for row in demo.interviews.iter_rows(named=True):
        source_guid = guid("source", row["interview_id"])
        source = ET.SubElement(sources, _q("TextSource"), {
            "guid": source_guid, "name": row["interview_id"], "plainTextPath": f"internal://{source_guid}.txt",
            "creatingUser": guid("user", row["interviewer"]), "creationDateTime": CREATED})
        for segment in by_interview.get((row["interview_id"],), pl.DataFrame()).iter_rows(named=True):
            start, end = segment["position"].split("-")
            selection = ET.SubElement(source, _q("PlainTextSelection"), {
                "guid": guid("selection", segment["segment_id"]), "name": segment["segment_id"],
                "startPosition": start, "endPosition": end, "creationDateTime": CREATED})
            coding = ET.SubElement(selection, _q("Coding"), {
                "guid": guid("coding", segment["segment_id"]), "creationDateTime": CREATED})
            ET.SubElement(coding, _q("CodeRef"), {"targetGUID": guid("code", segment["code"])})
        for column in registry_columns:
            value = row[column]
            if value is None:
                continue
            holder = ET.SubElement(source, _q("VariableValue"))
            ET.SubElement(holder, _q("VariableRef"), {"targetGUID": guid("variable", column)})
            ET.SubElement(holder, _q(f"{types.get(column, 'Text')}Value")).text = value
    ET.SubElement(project, _q("Description")).text = (
        "SYNTHETIC demo interviews of the reference wave 2019 (lbc_pipeline); not the interviews of Wang (2023).")
    ET.indent(project, space=" ")
    return ET.tostring(project, encoding="utf-8", xml_declaration=True) + b"\n"


def write_qdpx(demo: DemoSet, path: Path) -> Path:
    """The project as one `.qdpx` zip: project.qde and sources/<guid>.txt, fixed entry times."""
    entries = [("project.qde", project_xml(demo))]
    for interview_id in demo.interviews["interview_id"].to_list():
        entries.append((f"sources/{guid('source', interview_id)}.txt", demo.transcripts[interview_id].encode("utf-8")))
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return path


def write_demo_set(demo: DemoSet, out_dir: Path) -> list[Path]:
    """Write the three CSVs, the .qdpx export and the README into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, frame in (("interviews", demo.interviews), ("segments", demo.segments), ("codebook", demo.codebook)):
        path = out_dir / f"{stem}.csv"
        frame.write_csv(path)
        paths.append(path)
    paths.append(write_qdpx(demo, out_dir / QDPX_NAME))
    readme = out_dir / "README.md"
    readme.write_text(README.format(n_segments=demo.segments.height), encoding="utf-8")
    paths.append(readme)
    return paths


def main(argv: list[str] | None = None) -> int:
    import argparse

    from lbc_pipeline.config import REFERENCE_WAVE, raw_dir

    parser = argparse.ArgumentParser(prog="python -m lbc_pipeline.synthetic.interviews",
                                     description="Write the SYNTHETIC interview demo set of the reference wave.")
    parser.add_argument("--out", type=Path, default=None, help="default data/raw/2019/interviews")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    for path in write_demo_set(generate_demo_set(args.seed), args.out or raw_dir() / REFERENCE_WAVE / FOLDER):
        print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
