"""What the local agent answers: a small table of intents, honest about being the offline
stand-in. English for speech (the shipped recognition model is English-only); typed text may
also be Spanish, answered in Spanish (espeak-ng speaks both)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from sandra_tui.server.asr_corpus import DIGITS

STAND_IN = "I am the offline stand-in; connect a real backend for Sandra."
STAND_IN_ES = "Soy la sustituta sin conexión; conecta un servidor real para hablar con Sandra."
MAX_ECHO_CHARS = 400

DAYS_ES = ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"]
MONTHS_ES = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
             "octubre", "noviembre", "diciembre"]
SPANISH_DIGITS = ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"]


@dataclass
class Answer:
    text: str
    lang: str = "en"  # the espeak-ng voice
    intent: str = "fallback"
    tool: tuple[str, dict] | None = field(default=None)  # (function name, arguments) to call first


def normalise(text: str) -> str:
    text = text.lower().replace("’", "'")
    text = re.sub(r"[¿¡?!.,;:\"]", " ", text)
    for a, b in (("á", "a"), ("é", "e"), ("í", "i"), ("ó", "o"), ("ú", "u")):
        text = text.replace(a, b)
    return " ".join(text.split())


def booking_number(words: str) -> str | None:
    """The digits after 'booking' / 'reserva': '1234' or 'one two three four'."""
    m = re.search(r"\b(?:booking|reserva)(?: number| numero)?\s+(.+)$", words)
    if not m:
        return None
    digits = ""
    for token in m.group(1).split():
        if token.isdigit():
            digits += token
        elif token in DIGITS:
            digits += str(DIGITS.index(token))
        elif token == "oh":
            digits += "0"
        elif token in SPANISH_DIGITS:
            digits += str(SPANISH_DIGITS.index(token))
        else:
            break
    return digits or None


def _clock(now: float | None, lang: str) -> tuple[str, str]:
    t = time.localtime(now)
    if lang == "es":
        return (time.strftime("%H:%M", t),
                f"{DAYS_ES[t.tm_wday]} {t.tm_mday} de {MONTHS_ES[t.tm_mon - 1]} de {t.tm_year}")
    return time.strftime("%H:%M", t), time.strftime("%A %d %B %Y", t).replace(" 0", " ")


# (intent, pattern) in order; the first match wins. Patterns see normalised text.
ENGLISH = [
    ("repeat", r"^(?:please )?(?:repeat after me|say after me)\b\s*(?P<rest>.*)$"),
    ("booking", r"\b(?:check|look up|find)\b.*\bbooking\b|\bbooking (?:number )?(?:zero|one|two|three|four|five"
                r"|six|seven|eight|nine|oh|\d)"),  # "booking 1234" alone asks as well
    ("time", r"\b(?:what time|the time|time is it)\b"),
    ("date", r"\b(?:date|what day|which day|day of the week)\b"),
    ("who", r"\b(?:who are you|what are you|your name|are you a (?:robot|real person)|are you sandra"
            r"|who am i talking to)\b"),
    ("help", r"^(?:help|help me|i need help|can you help me|what can you do|what can i say"
             r"|how does this work|how do i use this)\b"),
    ("greeting", r"^(?:hello|hi|hey|good (?:morning|afternoon|evening))\b"),
    ("thanks", r"^(?:thanks|thank you)\b"),
    ("bye", r"^(?:goodbye|bye|see you)\b"),
]
SPANISH = [
    ("repeat", r"^(?:por favor )?repite(?: despues de mi| conmigo)?\b\s*(?P<rest>.*)$"),
    ("booking", r"\b(?:consulta|comprueba|revisa|mira)\b.*\breserva\b"),
    ("time", r"\bque hora\b"),
    ("date", r"\b(?:que dia|fecha)\b"),
    ("who", r"\b(?:quien eres|que eres|como te llamas)\b"),
    ("help", r"^(?:ayuda|ayudame|que puedes hacer)\b"),
    ("greeting", r"^(?:hola|buenos dias|buenas tardes|buenas noches)\b"),
    ("thanks", r"^(?:gracias|muchas gracias)\b"),
    ("bye", r"^(?:adios|hasta luego)\b"),
]


def match(text: str) -> tuple[str, str, re.Match] | None:
    """(intent, language, match) for the first pattern that fits, or None."""
    words = normalise(text)
    for lang, table in (("en", ENGLISH), ("es", SPANISH)):
        for intent, pattern in table:
            m = re.search(pattern, words)
            if m and (intent != "repeat" or m.group("rest")):
                return intent, lang, m
    return None


def complete(text: str) -> bool:
    """The words so far already make a request (semantic_vad may end the turn sooner)."""
    found = match(text)
    if found is None:
        return False
    if found[0] == "booking":
        number = booking_number(normalise(text))
        return number is not None and len(number) >= 4
    return found[0] != "repeat"  # "repeat after me ..." is done when the speaker is


def answer(text: str, typed: bool = False, now: float | None = None) -> Answer:
    """The reply to what was said (or typed)."""
    found = match(text)
    shown = text.strip()
    if len(shown) > MAX_ECHO_CHARS:
        shown = shown[:MAX_ECHO_CHARS] + "..."
    if found is None:
        if typed:
            return Answer(f"{STAND_IN} You wrote: {shown}")
        return Answer(f"I heard: {shown}. {STAND_IN}")
    intent, lang, m = found
    es = lang == "es"
    clock, day = _clock(now, lang)
    if intent == "repeat":
        reply = m.group("rest")
    elif intent == "booking":
        number = booking_number(normalise(text))
        if number:
            return Answer("", lang, intent, ("check_booking", {"booking_number": number}))
        reply = ("Dime el número de la reserva, por ejemplo: consulta la reserva 1234." if es else
                 "Tell me the booking number, for example: check booking 1 2 3 4.")
    elif intent == "time":
        reply = f"Son las {clock}." if es else f"It is {clock}."
    elif intent == "date":
        reply = f"Hoy es {day}." if es else f"Today is {day}."
    elif intent == "who":
        reply = STAND_IN_ES if es else (
            "I am Sandra's offline stand-in: speech recognition and a few answers on this machine, "
            "no language model. Connect a real backend for Sandra.")
    elif intent == "help":
        reply = ("Puedes preguntar la hora o la fecha, decir repite y una frase, o consulta la reserva y un "
                 "número." if es else
                 "You can ask the time or the date, who I am, say repeat after me and a sentence, "
                 "or check booking and a number.")
    elif intent == "greeting":
        reply = f"Hola. {STAND_IN_ES}" if es else f"Hello. {STAND_IN}"
    elif intent == "thanks":
        reply = "De nada." if es else "You are welcome."
    else:
        reply = "Adiós." if es else "Goodbye."
    if typed:  # a typed message is quoted first, as the stand-in always did
        reply = f"{'Escribiste' if es else 'You wrote'}: {shown}. {reply}"
    return Answer(reply, lang, intent)


def tool_answer(result: dict, lang: str = "en") -> Answer:
    """The spoken answer once check_booking has returned."""
    number = result.get("booking_number", "")
    spaced = " ".join(number)
    if not result.get("found"):
        text = (f"No encuentro la reserva {spaced}. Son datos de demostración." if lang == "es" else
                f"I found no booking {spaced}. This is demo data.")
    elif lang == "es":
        text = (f"La reserva {spaced} está confirmada: {result['guests']} personas, {result['nights']} noches "
                f"desde el {result['check_in']}. Son datos de demostración.")
    else:
        text = (f"Booking {spaced} is {result['status']}: {result['guests']} guests, {result['nights']} nights "
                f"from {result['check_in']}. This is demo data.")
    return Answer(text, lang, "booking")
