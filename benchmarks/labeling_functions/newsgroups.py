"""Labeling functions for 20 Newsgroups (``newsgroups``), written from the groups' names and
charters (what each group is for), not from its labels: one keyword rule per group, voting that
group when two or more of its words occur in a post (the text is lower case, punctuation gone)."""

from __future__ import annotations

import labelwise

WORDS = {
    "alt.atheism": {"atheism", "atheist", "atheists", "god", "belief", "religion"},
    "comp.graphics": {"graphics", "image", "images", "render", "polygon", "jpeg", "gif", "3d"},
    "comp.os.ms-windows.misc": {"windows", "dos", "microsoft", "win", "driver", "drivers", "ini"},
    "comp.sys.ibm.pc.hardware": {"ibm", "pc", "motherboard", "ide", "scsi", "bios", "isa", "drive"},
    "comp.sys.mac.hardware": {"mac", "apple", "macintosh", "powerbook", "quadra", "lc", "simm"},
    "comp.windows.x": {"x11", "xterm", "motif", "widget", "window", "server", "xlib", "display"},
    "misc.forsale": {"sale", "sell", "offer", "shipping", "price", "condition", "asking"},
    "rec.autos": {"car", "cars", "engine", "ford", "toyota", "dealer", "driving", "tires"},
    "rec.motorcycles": {"bike", "bikes", "motorcycle", "ride", "riding", "helmet", "dod"},
    "rec.sport.baseball": {"baseball", "pitcher", "season", "hitter", "league", "runs", "inning"},
    "rec.sport.hockey": {"hockey", "nhl", "goal", "playoffs", "team", "puck", "players"},
    "sci.crypt": {"encryption", "crypto", "key", "clipper", "privacy", "nsa", "cipher"},
    "sci.electronics": {"circuit", "voltage", "electronics", "power", "amp", "wire", "battery"},
    "sci.med": {"medical", "doctor", "disease", "patients", "treatment", "health", "drug"},
    "sci.space": {"space", "nasa", "orbit", "launch", "moon", "shuttle", "satellite"},
    "soc.religion.christian": {"christian", "church", "jesus", "christ", "bible", "faith"},
    "talk.politics.guns": {"gun", "guns", "firearms", "weapons", "nra", "batf", "amendment"},
    "talk.politics.mideast": {"israel", "israeli", "arab", "jews", "palestinian", "turkish"},
    "talk.politics.misc": {"government", "president", "clinton", "tax", "congress", "policy"},
    "talk.religion.misc": {"religion", "moral", "koresh", "cult", "christians", "objective"},
}


def _rule(group: str, words: set[str]) -> labelwise.LabelingFunction:
    def votes(row):
        return len(words & set(row.text.split())) >= 2

    return labelwise.labeling_function(name=group.replace(".", "_"), label=group)(votes)


for _group, _words in WORDS.items():
    globals()[_group.replace(".", "_").replace("-", "_")] = _rule(_group, _words)
