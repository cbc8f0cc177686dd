"""English names of language codes, for what people read: LibreTranslate's /languages and
Argos Translate's package metadata (`from_name`, `to_name`). A code without a name here is
shown as itself."""

from __future__ import annotations

__all__ = ["LANGUAGE_NAMES", "language_name"]

LANGUAGE_NAMES = dict(pair.split("=") for pair in (
    "af=Afrikaans ar=Arabic az=Azerbaijani be=Belarusian bg=Bulgarian bn=Bengali bs=Bosnian ca=Catalan "
    "cs=Czech cy=Welsh da=Danish de=German el=Greek en=English eo=Esperanto es=Spanish et=Estonian eu=Basque "
    "fa=Persian fi=Finnish fr=French ga=Irish gl=Galician he=Hebrew hi=Hindi hr=Croatian hu=Hungarian "
    "hy=Armenian id=Indonesian is=Icelandic it=Italian ja=Japanese ka=Georgian kk=Kazakh ko=Korean "
    "lt=Lithuanian lv=Latvian mk=Macedonian ms=Malay mt=Maltese nb=Norwegian nl=Dutch nn=Nynorsk no=Norwegian "
    "pl=Polish pt=Portuguese ro=Romanian ru=Russian sk=Slovak sl=Slovenian sq=Albanian sr=Serbian sv=Swedish "
    "sw=Swahili ta=Tamil th=Thai tl=Tagalog tr=Turkish uk=Ukrainian ur=Urdu uz=Uzbek vi=Vietnamese "
    "zh=Chinese").split())


def language_name(code: str) -> str:
    """`de` -> `German`; an unknown code is its own name."""
    return LANGUAGE_NAMES.get(code, code)
