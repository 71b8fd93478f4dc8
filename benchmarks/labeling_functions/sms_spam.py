"""Labeling functions for SMS spam (``sms_spam``), written from the collection's documentation
(Almeida, Gomez Hidalgo & Yamakami 2011: spam there is mostly prize and competition offers,
ringtone and chat subscriptions, premium-rate numbers and short codes to text; ham is personal
messages between people), not from its labels. Each votes one class or abstains."""

from __future__ import annotations

import re

import labelwise

PRIZE = re.compile(r"\b(won|winner|prize|award|claim|cash|reward|selected)\b")
OFFER = re.compile(r"\b(free|offer|discount|unsubscribe|subscription|ringtone|tone)\b")
SHORT_CODE = re.compile(r"\b(txt|text|reply|send)\b[^.]{0,20}\b\d{4,6}\b")
PHONE = re.compile(r"\b0\d{9,10}\b|\b08\d{8,9}\b|\b09\d{8,9}\b")
URL = re.compile(r"https?://|www\.|\.com\b|\.co\.uk\b")
MONEY = re.compile(r"£|\$\s?\d|\bp/m(in|sg)\b|\b\d+p\b|\bper (min|msg|week)\b")
PERSONAL = re.compile(
    r"\b(i'm|im|i'll|ill|u r|lol|haha|ok|okay|love you|miss you|sorry|home|dinner|tonight)\b"
)
FIRST_PERSON = re.compile(r"\b(i|me|my|we)\b")


@labelwise.labeling_function(name="prize_words", label="spam")
def prize_words(row):
    return PRIZE.search(row.text.lower()) is not None


@labelwise.labeling_function(name="offer_words", label="spam")
def offer_words(row):
    return OFFER.search(row.text.lower()) is not None


@labelwise.labeling_function(name="text_to_short_code", label="spam")
def text_to_short_code(row):
    return SHORT_CODE.search(row.text.lower()) is not None


@labelwise.labeling_function(name="premium_number", label="spam")
def premium_number(row):
    return PHONE.search(row.text) is not None


@labelwise.labeling_function(name="link_or_price", label="spam")
def link_or_price(row):
    text = row.text.lower()
    return URL.search(text) is not None or MONEY.search(text) is not None


@labelwise.labeling_function(name="shouting", label="spam")
def shouting(row):
    letters = [c for c in row.text if c.isalpha()]
    return len(letters) >= 20 and sum(c.isupper() for c in letters) / len(letters) > 0.4


@labelwise.labeling_function(name="chatty", label="ham")
def chatty(row):
    return PERSONAL.search(row.text.lower()) is not None


@labelwise.labeling_function(name="short_personal", label="ham")
def short_personal(row):
    text = row.text.lower()
    return (
        len(text) < 60 and FIRST_PERSON.search(text) is not None and not re.search(r"\d{4,}", text)
    )
