#!/usr/bin/env python3
"""Generate the synthetic English -> German demo corpus (mt_cli/core/demo_data/, shipped in the wheel).

Why: tests, tutorials and smoke benchmarks need a parallel corpus that we own, that is
small enough to commit, that a small Transformer learns in minutes on a CPU, and that
still exercises real translation problems: gender/case agreement, adjective inflection,
irregular plurals, verb-second and verb-final order, separable verbs, kein vs. nicht,
numbers, dates, clock times and questions. Every sentence comes from the hand-written
grammar below; no corpus text is copied. Output is deterministic for a seed and counts
(stdlib only), and test/dev are drawn before train so they do not change with --train.

    python scripts/make_demo_data.py [--out mt_cli/core/demo_data] [--seed 13] [--train N] [--dev N] [--test N]
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

Pair = tuple[str, str]  # an (English, German) fragment


@dataclass(frozen=True)
class Noun:
    cls: str  # semantic classes, see NOUN_TABLE
    en: str
    en_pl: str
    de: str
    de_pl: str
    g: str  # m / f / n


@dataclass(frozen=True)
class Adj:
    cls: str
    en: str
    de: str  # predicative form
    attr: str  # attributive stem: teuer -> teur(e)


@dataclass(frozen=True)
class Verb:
    en: tuple[str, str, str]  # base, 3sg, past; "_" joins English particles (pick_up)
    de: tuple[str, str, str, str]  # present: ich, du, er/sie, wir/sie
    part: str  # participle, separable prefix included
    aux: str  # perfect auxiliary: h = haben, s = sein
    sep: str  # separable prefix, or ""
    kind: str  # a: accusative object, d: dative object, g: dative + accusative, i/m: none
    subj: str  # classes allowed as subject
    obj: str  # classes allowed as object

    @property
    def inf(self) -> str:
        return self.sep + self.de[3]


T = TypeVar("T", Noun, Adj)

# Classes: P person, A animal, T thing, F food, L place; T subclasses R readable,
# S surface (on/under), O openable, E electric. Entries: en/en_pl/de/de_pl/gender.
NOUN_TABLE = """
P man/men/Mann/Männer/m woman/women/Frau/Frauen/f child/children/Kind/Kinder/n
P girl/girls/Mädchen/Mädchen/n teacher/teachers/Lehrer/Lehrer/m doctor/doctors/Arzt/Ärzte/m
P friend/friends/Freund/Freunde/m sister/sisters/Schwester/Schwestern/f
P brother/brothers/Bruder/Brüder/m mother/mothers/Mutter/Mütter/f father/fathers/Vater/Väter/m
P cook/cooks/Koch/Köche/m baker/bakers/Bäcker/Bäcker/m driver/drivers/Fahrer/Fahrer/m
P king/kings/König/Könige/m queen/queens/Königin/Königinnen/f waiter/waiters/Kellner/Kellner/m
P singer/singers/Sänger/Sänger/m grandmother/grandmothers/Großmutter/Großmütter/f
P uncle/uncles/Onkel/Onkel/m aunt/aunts/Tante/Tanten/f baby/babies/Baby/Babys/n
A dog/dogs/Hund/Hunde/m cat/cats/Katze/Katzen/f horse/horses/Pferd/Pferde/n
A bird/birds/Vogel/Vögel/m mouse/mice/Maus/Mäuse/f cow/cows/Kuh/Kühe/f
A pig/pigs/Schwein/Schweine/n duck/ducks/Ente/Enten/f rabbit/rabbits/Kaninchen/Kaninchen/n
A wolf/wolves/Wolf/Wölfe/m
T car/cars/Auto/Autos/n ball/balls/Ball/Bälle/m key/keys/Schlüssel/Schlüssel/m
T bicycle/bicycles/Fahrrad/Fahrräder/n picture/pictures/Bild/Bilder/n cup/cups/Tasse/Tassen/f
T shoe/shoes/Schuh/Schuhe/m hat/hats/Hut/Hüte/m clock/clocks/Uhr/Uhren/f
TRO book/books/Buch/Bücher/n letter/letters/Brief/Briefe/m
TR newspaper/newspapers/Zeitung/Zeitungen/f
TS chair/chairs/Stuhl/Stühle/m table/tables/Tisch/Tische/m bed/beds/Bett/Betten/n
TSO box/boxes/Kiste/Kisten/f
TO bag/bags/Tasche/Taschen/f door/doors/Tür/Türen/f window/windows/Fenster/Fenster/n
TE phone/phones/Telefon/Telefone/n lamp/lamps/Lampe/Lampen/f
TE computer/computers/Computer/Computer/m
F apple/apples/Apfel/Äpfel/m cake/cakes/Kuchen/Kuchen/m egg/eggs/Ei/Eier/n
F soup/soups/Suppe/Suppen/f banana/bananas/Banane/Bananen/f tomato/tomatoes/Tomate/Tomaten/f
F sausage/sausages/Wurst/Würste/f potato/potatoes/Kartoffel/Kartoffeln/f
F pear/pears/Birne/Birnen/f
L house/houses/Haus/Häuser/n garden/gardens/Garten/Gärten/m park/parks/Park/Parks/m
L kitchen/kitchens/Küche/Küchen/f school/schools/Schule/Schulen/f
L station/stations/Bahnhof/Bahnhöfe/m city/cities/Stadt/Städte/f street/streets/Straße/Straßen/f
L room/rooms/Zimmer/Zimmer/n shop/shops/Laden/Läden/m
L restaurant/restaurants/Restaurant/Restaurants/n office/offices/Büro/Büros/n
L forest/forests/Wald/Wälder/m church/churches/Kirche/Kirchen/f
L library/libraries/Bibliothek/Bibliotheken/f hotel/hotels/Hotel/Hotels/n
L bridge/bridges/Brücke/Brücken/f village/villages/Dorf/Dörfer/n market/markets/Markt/Märkte/m
L museum/museums/Museum/Museen/n
"""

# Entries: en/de[/attributive stem]; the classes say which nouns an adjective fits.
ADJ_TABLE = """
PATL big/groß small/klein old/alt beautiful/schön
PA young/jung happy/glücklich sad/traurig tired/müde/müd hungry/hungrig friendly/freundlich
PAL quiet/ruhig
TL new/neu clean/sauber empty/leer
T red/rot blue/blau green/grün expensive/teuer/teur cheap/billig
TA black/schwarz white/weiß fast/schnell
F warm/warm fresh/frisch delicious/lecker
"""

# en base/3sg/past | de ich/du/er/wir | participle aux prefix kind subject-classes object-classes
VERB_TABLE = """
see sees saw sehe siehst sieht sehen gesehen h - a PA PATFL
buy buys bought kaufe kaufst kauft kaufen gekauft h - a P TFR
read reads read lese liest liest lesen gelesen h - a P R
eat eats ate esse isst isst essen gegessen h - a P F
find finds found finde findest findet finden gefunden h - a PA TFR
need needs needed brauche brauchst braucht brauchen gebraucht h - a P TFR
like likes liked mag magst mag mögen gemocht h - a P PATFL
love loves loved liebe liebst liebt lieben geliebt h - a P PA
visit visits visited besuche besuchst besucht besuchen besucht h - a P PL
wash washes washed wasche wäschst wäscht waschen gewaschen h - a P TA
carry carries carried trage trägst trägt tragen getragen h - a P T
open opens opened öffne öffnest öffnet öffnen geöffnet h - a P O
call calls called rufe rufst ruft rufen angerufen h an a P P
pick_up picks_up picked_up hole holst holt holen abgeholt h ab a P PT
bring_along brings_along brought_along bringe bringst bringt bringen mitgebracht h mit a P TF
turn_on turns_on turned_on schalte schaltest schaltet schalten eingeschaltet h ein a P E
look_for looks_for looked_for suche suchst sucht suchen gesucht h - a PA PATR
draw draws drew zeichne zeichnest zeichnet zeichnen gezeichnet h - a P PATL
cook cooks cooked koche kochst kocht kochen gekocht h - a P F
sell sells sold verkaufe verkaufst verkauft verkaufen verkauft h - a P TFR
write writes wrote schreibe schreibst schreibt schreiben geschrieben h - a P R
meet meets met treffe triffst trifft treffen getroffen h - a P P
take takes took nehme nimmst nimmt nehmen genommen h - a P TFR
forget forgets forgot vergesse vergisst vergisst vergessen vergessen h - a P TR
build builds built baue baust baut bauen gebaut h - a P L
repair repairs repaired repariere reparierst repariert reparieren repariert h - a P TE
clean cleans cleaned putze putzt putzt putzen geputzt h - a P TL
hear hears heard höre hörst hört hören gehört h - a PA PA
help helps helped helfe hilfst hilft helfen geholfen h - d P PA
follow follows followed folge folgst folgt folgen gefolgt s - d PA PA
thank thanks thanked danke dankst dankt danken gedankt h - d P P
sleep sleeps slept schlafe schläfst schläft schlafen geschlafen h - i PA -
work works worked arbeite arbeitest arbeitet arbeiten gearbeitet h - i P -
play plays played spiele spielst spielt spielen gespielt h - i PA -
wait waits waited warte wartest wartet warten gewartet h - i PA -
sing sings sang singe singst singt singen gesungen h - i P -
laugh laughs laughed lache lachst lacht lachen gelacht h - i P -
dance dances danced tanze tanzt tanzt tanzen getanzt h - i P -
live lives lived wohne wohnst wohnt wohnen gewohnt h - i P -
get_up gets_up got_up stehe stehst steht stehen aufgestanden s auf i PA -
arrive arrives arrived komme kommst kommt kommen angekommen s an i PA -
fall_asleep falls_asleep fell_asleep schlafe schläfst schläft schlafen eingeschlafen s ein i PA -
go goes went gehe gehst geht gehen gegangen s - m PA -
run runs ran laufe läufst läuft laufen gelaufen s - m PA -
drive drives drove fahre fährst fährt fahren gefahren s - m P -
come comes came komme kommst kommt kommen gekommen s - m PA -
come_back comes_back came_back komme kommst kommt kommen zurückgekommen s zurück m PA -
give gives gave gebe gibst gibt geben gegeben h - g P TFR
show shows showed zeige zeigst zeigt zeigen gezeigt h - g P TFR
send sends sent schicke schickst schickt schicken geschickt h - g P TR
bring brings brought bringe bringst bringt bringen gebracht h - g P TF
"""

# Reporting verbs for "X thinks that ...": en base/3sg/past, de present x4, Präteritum stem.
SAY_TABLE = """
think thinks thought denke denkst denkt denken dachte
know knows knew weiß weißt weiß wissen wusste
say says said sage sagst sagt sagen sagte
hope hopes hoped hoffe hoffst hofft hoffen hoffte
believe believes believed glaube glaubst glaubt glauben glaubte
"""


def _entries(table: str) -> list[tuple[str, list[str]]]:
    """(classes, slash-separated fields) for every entry of a NOUN/ADJ table."""
    return [(line.split()[0], item.split("/")) for line in table.strip().splitlines()
            for item in line.split()[1:]]


def _words(text: str) -> tuple[str, ...]:
    """Space-separated word list as a tuple (keeps the long tables on one line)."""
    return tuple(text.split())


NOUNS = [Noun(cls, *fields) for cls, fields in _entries(NOUN_TABLE)]
ADJS = [Adj(cls, f[0], f[1], f[-1]) for cls, f in _entries(ADJ_TABLE)]
VERBS = [Verb((f[0], f[1], f[2]), (f[3], f[4], f[5], f[6]), f[7], f[8], f[9].strip("-"),
              f[10], f[11], f[12]) for f in map(str.split, VERB_TABLE.strip().splitlines())]
SAY = [line.split() for line in SAY_TABLE.strip().splitlines()]

# Person index 0..3 = 1sg, 2sg, 3sg, plural (wir and sie share a form for every verb here).
PRON_EN = (("I", "me"), ("you", "you"), ("he", "him"), ("she", "her"), ("we", "us"),
           ("they", "them"))
PRON_DE = (("ich", "mich", "mir"), ("du", "dich", "dir"), ("er", "ihn", "ihm"),
           ("sie", "sie", "ihr"), ("wir", "uns", "uns"), ("sie", "sie", "ihnen"))
PRON_PERSON = (0, 1, 2, 2, 3, 3)
POSS_EN = ("my", "your", "his", "her", "our", "their")
POSS_DE = ("mein", "dein", "sein", "ihr", "unser", "ihr")
SEIN, WAR = ("bin", "bist", "ist", "sind"), ("war", "warst", "war", "waren")
HABEN, WERDEN = ("habe", "hast", "hat", "haben"), ("werde", "wirst", "wird", "werden")
BE_PRES, BE_PAST = ("am", "are", "is", "are"), ("was", "were", "was", "were")
MODALS = {"can": ("kann", "kannst", "kann", "können"), "must": ("muss", "musst", "muss", "müssen"),
          "mustnot": ("darf", "darfst", "darf", "dürfen"), "want": ("will", "willst", "will", "wollen")}
# Case index 0..2 = nominative, accusative, dative; gender "p" = plural.
DEF = {"m": ("der", "den", "dem"), "f": ("die", "die", "der"), "n": ("das", "das", "dem"),
       "p": ("die", "die", "den")}
EIN = {"m": ("", "en", "em"), "f": ("e", "e", "er"), "n": ("", "", "em"), "p": ("e", "e", "en")}
DIES = {"m": ("er", "en", "em"), "f": ("e", "e", "er"), "n": ("es", "es", "em"),
        "p": ("e", "e", "en")}
WEAK = {"m": ("e", "en", "en"), "f": ("e", "e", "en"), "n": ("e", "e", "en"),
        "p": ("en", "en", "en")}
MIXED = {"m": ("er", "en", "en"), "f": ("e", "e", "en"), "n": ("es", "es", "en"),
         "p": ("en", "en", "en")}
STRONG_PL = ("e", "e", "en")
NUM_EN = _words("zero one two three four five six seven eight nine ten eleven twelve")
NUM_DE = _words("null ein zwei drei vier fünf sechs sieben acht neun zehn elf zwölf")
MONTH_EN = _words("January February March April May June July August September October "
                  "November December")
MONTH_DE = _words("Januar Februar März April Mai Juni Juli August September Oktober November "
                  "Dezember")
DAY_EN = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
DAY_DE = _words("Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag")
FREQ = (("often", "oft"), ("always", "immer"), ("sometimes", "manchmal"), ("never", "nie"),
        ("rarely", "selten"))
MANNER = (("quickly", "schnell"), ("slowly", "langsam"), ("quietly", "leise"), ("loudly", "laut"),
          ("well", "gut"))
DEGREE = (("very", "sehr"), ("too", "zu"), ("quite", "ziemlich"))
LOC_PREP = (("in", "in"), ("behind", "hinter"), ("next to", "neben"), ("in front of", "vor"))
CONTRACT = {"in dem": "im", "an dem": "am", "zu dem": "zum", "zu der": "zur", "in das": "ins"}
TIMES = {
    "pres": (("today", "heute"), ("now", "jetzt"), ("every day", "jeden Tag"),
             ("in the morning", "am Morgen"), ("in the evening", "am Abend"),
             ("at the weekend", "am Wochenende"), ("tonight", "heute Abend")),
    "past": (("yesterday", "gestern"), ("last week", "letzte Woche"), ("last year", "letztes Jahr"),
             ("yesterday evening", "gestern Abend"), ("last month", "letzten Monat")),
    "fut": (("tomorrow", "morgen"), ("next week", "nächste Woche"), ("next year", "nächstes Jahr"),
            ("tomorrow morning", "morgen früh"), ("next month", "nächsten Monat")),
}


@dataclass(frozen=True)
class NP:
    det: str  # def indef dem poss bare num many some howmany pron who pair
    noun: Noun | None = None
    plural: bool = False
    adj: Adj | None = None
    idx: int = 0  # pronoun / possessor index, or the number when det == "num"
    pair: tuple[NP, ...] = ()

    @property
    def person(self) -> int:
        if self.det == "pron":
            return PRON_PERSON[self.idx]
        return 3 if self.plural or self.pair else 2


def np_en(np: NP, obj: bool = False, neg: bool = False) -> str:
    """English noun phrase; `neg` turns a / bare plural into "no" (there is no ...)."""
    if np.pair:
        return " and ".join(np_en(x, obj) for x in np.pair)
    if np.det in ("pron", "who"):
        return PRON_EN[np.idx][obj] if np.det == "pron" else "who"
    assert np.noun is not None
    words = ([np.adj.en] if np.adj else []) + [np.noun.en_pl if np.plural else np.noun.en]
    if neg and np.det in ("indef", "bare"):
        det = "no"
    elif np.det == "indef":
        det = "an" if words[0][0] in "aeiou" else "a"
    elif np.det == "poss":
        det = POSS_EN[np.idx]
    elif np.det == "num":
        det = NUM_EN[np.idx] if np.idx <= 12 else str(np.idx)
    else:
        det = {"def": "the", "dem": "these" if np.plural else "this", "bare": "", "many": "many",
               "some": "some", "howmany": "how many"}[np.det]
    return " ".join([det] + words if det else words)


def np_de(np: NP, case: int, neg: bool = False) -> str:
    """German noun phrase in `case` with article/adjective agreement; `neg` makes ein -> kein."""
    if np.pair:
        return " und ".join(np_de(x, case) for x in np.pair)
    if np.det in ("pron", "who"):
        return PRON_DE[np.idx][case] if np.det == "pron" else "wer"
    assert np.noun is not None
    g = "p" if np.plural else np.noun.g
    noun = np.noun.de_pl if np.plural else np.noun.de
    if np.plural and case == 2 and noun[-1] not in "ns":
        noun += "n"  # dative plural: den Männern
    if np.det in ("def", "dem"):  # weak adjective after der/dieser
        det = DEF[g][case] if np.det == "def" else "dies" + DIES[g][case]
        end = WEAK[g][case]
    elif np.det in ("indef", "poss") or (neg and np.det == "bare"):  # mixed after ein/kein/mein
        base = POSS_DE[np.idx] if np.det == "poss" else "kein" if neg else "ein"
        det, end = base + EIN[g][case], MIXED[g][case]
    else:  # strong adjective: no article, a number or a quantifier
        end = STRONG_PL[case]
        det = {"bare": "", "many": "viel" + end, "some": "einig" + end,
               "howmany": "wie viel" + end}.get(np.det, "")
        det = det or (NUM_DE[np.idx] if np.idx <= 12 else str(np.idx)) * (np.det == "num")
    words = [det] if det else []
    return " ".join(words + ([np.adj.attr + end] if np.adj else []) + [noun])


@dataclass(frozen=True)
class Clause:
    subj: NP
    verb: Verb | None  # None: copula "be", or "there is" when `there`
    tense: str = "pres"  # pres / past / fut; English past = German perfect
    modal: str = ""  # can / must / want (present only)
    neg: bool = False
    dat: NP | None = None  # dative object (helfen) or recipient (geben)
    obj: NP | None = None  # accusative object
    pred: Pair | None = None  # copula predicate
    freq: Pair | None = None
    manner: Pair | None = None
    pp: Pair | None = None
    time: Pair | None = None
    there: bool = False

    @property
    def person(self) -> int:
        return (self.obj.person if self.obj else 2) if self.there else self.subj.person

    @property
    def kein(self) -> NP | None:
        """German negates an indefinite object with kein instead of nicht."""
        for np in (self.obj, self.dat):
            if self.neg and np is not None and np.det in ("indef", "bare"):
                return np
        return None


def en_verb(c: Clause, question: bool) -> tuple[str, list[str]]:
    """(auxiliary fronted in questions, words after the subject), with do-support."""
    p, neg = c.person, c.neg and not c.there
    if c.verb is None:
        be = "will" if c.tense == "fut" else (BE_PAST if c.tense == "past" else BE_PRES)[p]
        rest = ["be"] if c.tense == "fut" else []
        return (be, rest) if question else ("", [be] + ["not"] * neg + rest)
    base, s3, past = c.verb.en
    do = {"pres": "does" if p == 2 else "do", "past": "did"}.get(c.tense, "")
    aux, finite, nonfinite = "", s3 if p == 2 else base, base
    if c.modal in ("can", "must"):
        aux = c.modal
    elif c.modal == "want":
        finite, nonfinite = ("wants" if p == 2 else "want") + " to " + base, "want to " + base
    elif c.tense == "fut":
        aux = "will"
    elif c.tense == "past":
        finite = past
    if aux and question:
        return aux, [nonfinite]
    if aux:
        return "", (["cannot"] if aux == "can" and neg else [aux] + ["not"] * neg) + [nonfinite]
    if question:
        return do, [nonfinite]
    return "", [do, "not", nonfinite] if neg else [finite]


def de_verb(c: Clause) -> tuple[str, list[str], str]:
    """(finite verb, clause-final infinitive/participle, separable prefix)."""
    p = c.person
    if c.there:
        return {"pres": ("gibt", [], ""), "past": ("gab", [], "")}.get(c.tense, ("wird", ["geben"], ""))
    if c.verb is None:
        return {"pres": (SEIN[p], [], ""), "past": (WAR[p], [], "")}.get(
            c.tense, (WERDEN[p], ["sein"], ""))
    v = c.verb
    if c.modal:  # "must not" is "nicht dürfen"
        return MODALS["mustnot" if c.modal == "must" and c.neg else c.modal][p], [v.inf], ""
    if c.tense == "pres":
        return v.de[p], [], v.sep
    if c.tense == "past":
        return (HABEN if v.aux == "h" else SEIN)[p], [v.part], ""
    return WERDEN[p], [v.inf], ""


def render_en(c: Clause, question: bool = False, front: str = "") -> str:
    """English clause: S V O Manner Place Time, or Aux S V ... for questions."""
    aux, verb = en_verb(c, question)
    if c.freq and not question:  # "often sees", "will often see", "is often tired"
        verb.insert(1 if (c.verb is None or len(verb) > 1) else 0, c.freq[0])
    subj = "there" if c.there else np_en(c.subj)
    no = c.kein if c.there else None
    rest = [np_en(x, True, x is no) for x in (c.dat, c.obj) if x]
    rest += [x[0] for x in (c.pred, c.manner, c.pp, c.time) if x]
    head = [aux, subj] if question else [subj]
    return " ".join(w for w in [front] + head + verb + rest if w)


def render_de(c: Clause, mode: str = "main", front: str = "", conj: str = "") -> str:
    """German clause; mode main = verb second, q = verb first, sub = verb last after `conj`."""
    fin, nonfin, sep = de_verb(c)
    subj = "es" if c.there else np_de(c.subj, 0)
    kein = c.kein
    # Middle field: pronouns, time, frequency, objects, nicht, manner, place, predicate.
    mid = [np_de(x, case) for x, case in ((c.obj, 1), (c.dat, 2)) if x and x.det == "pron"]
    mid += [x[1] for x in (c.time, c.freq) if x]
    mid += [np_de(x, k, x is kein) for x, k in ((c.dat, 2), (c.obj, 1)) if x and x.det != "pron"]
    mid += ["nicht"] if c.neg and kein is None else []
    mid += [x[1] for x in (c.manner, c.pp, c.pred) if x]
    if mode == "sub":
        return " ".join([conj, subj] + mid + nonfin + [sep + fin])
    head = [fin, subj] if mode == "q" else ([front, fin, subj] if front else [subj, fin])
    return " ".join(head + mid + nonfin + ([sep] if sep else []))


def pick(rng: random.Random, cls: str, pool: Sequence[T]) -> T:
    """A random lexicon entry sharing a semantic class letter with `cls`."""
    return rng.choice([x for x in pool if set(x.cls) & set(cls)])


def rand_np(rng: random.Random, cls: str, pron: float = 0.0, sing: bool = False) -> NP:
    """A noun phrase of a semantic class, with a realistic mix of determiners and adjectives."""
    if rng.random() < pron and "P" in cls:
        return NP("pron", idx=rng.randrange(6))
    noun = pick(rng, cls, NOUNS)
    adj = pick(rng, noun.cls[0], ADJS) if rng.random() < 0.2 else None
    plural = not sing and rng.random() < 0.3
    r = rng.random()
    if plural:
        det = ("def" if r < 0.35 else "bare" if r < 0.5 else "num" if r < 0.75 else "dem"
               if r < 0.8 else "poss" if r < 0.9 else rng.choice(("many", "some")))
    else:
        det = "def" if r < 0.45 else "indef" if r < 0.75 else "poss" if r < 0.9 else "dem"
    num = rng.randrange(2, 13) if rng.random() < 0.7 else rng.randrange(13, 100)
    return NP(det, noun, plural, adj, rng.randrange(6) if det == "poss" else num)


def rand_subj(rng: random.Random, cls: str) -> NP:
    """Subject: pronoun, noun phrase, or two coordinated noun phrases (plural verb)."""
    if "P" in cls and rng.random() < 0.05:
        a, b = rand_np(rng, cls, sing=True), rand_np(rng, cls, sing=True)
        if a.noun != b.noun:
            return NP("pair", pair=(a, b))
    return rand_np(rng, cls, pron=0.35)


def rand_pp(rng: random.Random, kind: str) -> Pair:
    """Prepositional phrase; the German preposition fixes the case and may contract (im, zum)."""
    r = rng.random()
    if kind == "m":  # direction: accusative after in/durch/über, dative after zu
        en, de, case = rng.choice((("into", "in", 1), ("to", "zu", 2), ("through", "durch", 1),
                                   ("across", "über", 1)))
        np = rand_np(rng, "L", sing=True)
    elif r < 0.2:
        en, de, case = rng.choice((("with", "mit", 2), ("with", "mit", 2), ("for", "für", 1),
                                   ("without", "ohne", 1)))
        np = rand_np(rng, "PA", pron=0.2, sing=rng.random() < 0.7)
    elif r < 0.4:
        en, de = rng.choice((("on", "auf"), ("under", "unter"), ("next to", "neben")))
        case, np = 2, rand_np(rng, "S", sing=True)
    else:
        (en, de), case, np = rng.choice(LOC_PREP), 2, rand_np(rng, "L", sing=rng.random() < 0.9)
    en_np, de_np = np_en(np, obj=True), np_de(np, case)
    article = de_np.split()[0]
    if np.det == "def" and f"{de} {article}" in CONTRACT:
        return f"{en} {en_np}", CONTRACT[f"{de} {article}"] + de_np[len(article):]
    return f"{en} {en_np}", f"{de} {de_np}"


def rand_time(rng: random.Random, tense: str) -> Pair:
    """Time adverbial that fits the tense: clock time, weekday, date, month, or a deictic word."""
    r = rng.random()
    if r < 0.2:
        h = rng.randrange(1, 13)
        if rng.random() < 0.5:
            return f"at {NUM_EN[h]} o'clock", f"um {NUM_DE[h]} Uhr"
        hh, mm = rng.randrange(0, 24), rng.choice((0, 15, 30, 45, rng.randrange(60)))
        return f"at {hh}:{mm:02d}", f"um {hh}:{mm:02d} Uhr"
    if r < 0.32:
        d = rng.randrange(7)
        every = tense == "pres" and rng.random() < 0.5
        return ("every " if every else "on ") + DAY_EN[d], ("jeden " if every else "am ") + DAY_DE[d]
    if r < 0.45 and tense != "pres":
        d, m = rng.randrange(1, 29), rng.randrange(12)
        y = rng.randrange(1990, 2024) if tense == "past" else rng.randrange(2025, 2031)
        return f"on {d} {MONTH_EN[m]} {y}", f"am {d}. {MONTH_DE[m]} {y}"
    if r < 0.52:
        m = rng.randrange(12)
        return f"in {MONTH_EN[m]}", f"im {MONTH_DE[m]}"
    if r < 0.65 and tense != "pres":
        n = rng.randrange(2, 24)
        n_en, n_de = (NUM_EN[n], NUM_DE[n]) if n <= 12 else (str(n), str(n))
        if tense == "fut":
            return f"in {n_en} days", f"in {n_de} Tagen"
        if rng.random() < 0.5:
            return f"{n_en} days ago", f"vor {n_de} Tagen"
        y = rng.randrange(1950, 2024)
        return f"in {y}", f"im Jahr {y}"
    return rng.choice(TIMES[tense])


def rand_clause(rng: random.Random, allow_neg: bool = True) -> Clause:
    """A random clause: a verb with its arguments, or a copula / "there is" clause."""
    r = rng.random()
    tense = rng.choices(("pres", "past", "fut"), (0.5, 0.35, 0.15))[0]
    neg = allow_neg and rng.random() < 0.15
    time = rand_time(rng, tense) if rng.random() < 0.22 else None
    if r < 0.18:  # copula with an adjective or a location
        subj = rand_subj(rng, rng.choice("PATTL"))
        if rng.random() < 0.7:
            adj = pick(rng, subj.noun.cls[0] if subj.noun else "P", ADJS)
            deg = rng.choice(DEGREE) if rng.random() < 0.3 else None
            pred = (f"{deg[0]} {adj.en}", f"{deg[1]} {adj.de}") if deg else (adj.en, adj.de)
        else:
            pred = rand_pp(rng, "loc")
        return Clause(subj, None, tense, neg=neg, pred=pred, time=time)
    if r < 0.24:  # there is / es gibt + accusative
        obj = rand_np(rng, rng.choice("PATF"))
        if obj.det in ("def", "dem", "poss"):  # "there is" wants an indefinite noun phrase
            obj = replace(obj, det="bare" if obj.plural else "indef")
        neg = neg and obj.det in ("indef", "bare")
        return Clause(NP("pron", idx=2), None, tense, neg=neg, obj=obj, pp=rand_pp(rng, "loc"),
                      time=time, there=True)
    v = rng.choice(VERBS)
    subj = rand_subj(rng, v.subj)
    modal = rng.choice(("can", "must", "want")) if rng.random() < 0.12 else ""
    tense = "pres" if modal else tense
    time = rand_time(rng, tense) if time else None
    pron = 0.0 if "_" in v.en[0] else 0.15  # no "picks him up" particle splitting
    obj = rand_np(rng, v.obj, pron) if v.kind in "ag" else None
    dat = rand_np(rng, v.obj if v.kind == "d" else "P", pron) if v.kind in "dg" else None
    if obj and obj.det in ("num", "many", "some"):
        neg = False  # "does not see three dogs" is not a clean kein/nicht case
    pp = rand_pp(rng, v.kind) if rng.random() < (0.5 if v.kind in "im" else 0.15) else None
    freq = rng.choice(FREQ) if not (neg or modal) and rng.random() < 0.1 else None
    manner = rng.choice(MANNER) if rng.random() < 0.08 else None
    return Clause(subj, v, tense, modal, neg, dat, obj, None, freq, manner, pp, time)


def finish(en: str, de: str, mark: str) -> Pair:
    """Capitalize the first word, add the final punctuation, expand English particles."""
    en = en.replace("_", " ")
    return en[0].upper() + en[1:] + mark, de[0].upper() + de[1:] + mark


def wh_question(rng: random.Random) -> Pair:
    """who/what/whom/how many/where/when/why; German fronts the wh-word and keeps verb-second."""
    c = replace(rand_clause(rng, allow_neg=False), freq=None)
    r = rng.random()
    if c.verb is not None and r < 0.2 and "P" in c.verb.subj:  # subject question
        c = replace(c, subj=NP("who"))
        return finish(render_en(c), render_de(c), "?")
    if c.verb is not None and (c.obj or c.dat) and r < 0.55:  # object question
        np, case = (c.obj, 1) if c.obj else (c.dat, 2)
        assert np is not None
        rest = replace(c, obj=None) if c.obj else replace(c, dat=None)
        if np.noun is not None and case == 1 and rng.random() < 0.35:
            np = replace(np, det="howmany", plural=True)
            return finish(render_en(rest, True, np_en(np, True)),
                          render_de(rest, front=np_de(np, 1)), "?")
        human = np.noun is None or np.noun.cls in "PA"
        en_w, de_w = ("who", ("wen", "wem")[case - 1]) if human else ("what", "was")
        return finish(render_en(rest, True, en_w), render_de(rest, front=de_w), "?")
    options = [("why", "warum")] + ([("when", "wann")] if c.time is None else [])
    if c.pp is None and c.pred is None:
        moving = c.verb is not None and c.verb.kind == "m"
        options.append(("where", "wohin" if moving else "wo"))
    en_w, de_w = rng.choice(options)
    return finish(render_en(c, True, en_w), render_de(c, front=de_w), "?")


def sentence(rng: random.Random) -> Pair:
    """One sentence pair from a weighted mix of constructions."""
    r = rng.random()
    if r < 0.52:  # declarative; a fronted time adverbial makes German invert (verb second)
        c = rand_clause(rng)
        if c.time and rng.random() < 0.35:
            t, c = c.time, replace(c, time=None)
            return finish(render_en(c, front=t[0]), render_de(c, front=t[1]), ".")
        return finish(render_en(c), render_de(c), ".")
    if r < 0.64:  # yes/no question: verb first
        c = replace(rand_clause(rng, allow_neg=False), freq=None)
        return finish(render_en(c, question=True), render_de(c, "q"), "?")
    if r < 0.78:
        return wh_question(rng)
    sub = rand_clause(rng)
    conj_en, conj_de = rng.choice((("because", "weil"), ("although", "obwohl"), ("when", "wenn"),
                                   ("if", "wenn"), ("while", "während")))
    if conj_en == "when" and sub.tense == "past":
        conj_de = "als"
    elif conj_en in ("if", "when") and sub.tense == "fut":
        sub = replace(sub, tense="pres")  # English and German use the present here
    sub_en, sub_de = f"{conj_en} {render_en(sub)}", render_de(sub, "sub", conj=conj_de)
    if r < 0.85:  # main clause + subordinate clause (verb last)
        c = rand_clause(rng)
        return finish(f"{render_en(c)} {sub_en}", f"{render_de(c)}, {sub_de}", ".")
    if r < 0.89:  # fronted subordinate clause: the main clause inverts
        c = rand_clause(rng)
        return finish(render_en(c, front=sub_en + ","), render_de(c, front=sub_de + ","), ".")
    if r < 0.94:  # reported speech: "X thinks that ..." -> "X denkt, dass ..."
        s, say = rand_subj(rng, "P"), rng.choice(SAY)
        p = s.person
        if rng.random() < 0.6:
            en_v, de_v = say[1] if p == 2 else say[0], say[3 + p]
        else:
            en_v, de_v = say[2], say[7] + ("", "st", "", "n")[p]
        return finish(f"{np_en(s)} {en_v} that {render_en(sub)}",
                      f"{np_de(s, 0)} {de_v}, {render_de(sub, 'sub', conj='dass')}", ".")
    c = rand_clause(rng)  # coordination of two main clauses
    if rng.random() < 0.6:
        return finish(f"{render_en(c)} and {render_en(sub)}",
                      f"{render_de(c)} und {render_de(sub)}", ".")
    return finish(f"{render_en(c)}, but {render_en(sub)}",
                  f"{render_de(c)}, aber {render_de(sub)}", ".")


def generate(seed: int = 13, n_train: int = 20000, n_dev: int = 500,
             n_test: int = 500) -> dict[str, list[Pair]]:
    """Draw test, dev, then train; no English or German sentence occurs twice in the corpus."""
    rng, seen = random.Random(seed), set()
    splits: dict[str, list[Pair]] = {}
    for name, n in (("test", n_test), ("dev", n_dev), ("train", n_train)):
        pairs = splits.setdefault(name, [])
        while len(pairs) < n:
            en, de = sentence(rng)
            n_words = len(en.split())
            if n_words > 15 and rng.random() < 0.5:
                continue  # thin the long tail: mean stays near 8 words, corpus under 2 MB
            if 4 <= n_words <= 30 and en not in seen and de not in seen:
                seen.update((en, de))
                pairs.append((en, de))
    return {k: splits[k] for k in ("train", "dev", "test")}


def write(splits: dict[str, list[Pair]], out: Path) -> None:
    """One UTF-8 sentence per line, "\\n" line ends on every platform."""
    out.mkdir(parents=True, exist_ok=True)
    for name, pairs in splits.items():
        for i, lang in enumerate(("en", "de")):
            text = "".join(p[i] + "\n" for p in pairs)
            (out / f"{name}.{lang}").write_bytes(text.encode("utf-8"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Generate the synthetic En-De demo corpus.")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "mt_cli" / "core" / "demo_data")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--dev", type=int, default=500)
    ap.add_argument("--test", type=int, default=500)
    a = ap.parse_args(argv)
    write(generate(a.seed, a.train, a.dev, a.test), a.out)
    print(f"wrote {a.train}/{a.dev}/{a.test} train/dev/test pairs to {a.out}")


if __name__ == "__main__":
    main()
