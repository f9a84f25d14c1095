"""xSID: a German (or Italian) synthetic set, scored on real German (Italian) requests.

    python benchmarks/xsid.py                          # German, label names translated
    python benchmarks/xsid.py --examples               # + three German examples per intent
    python benchmarks/xsid.py --language it            # Italian
    python benchmarks/xsid.py --language en --examples --out output/xsid-en   # English, then:
    textsynth translate output/xsid-en --to de --out output/translated-de
    python benchmarks/xsid.py --reuse output/xsid-de   # a finished run: no generation
    python benchmarks/xsid.py --reuse output/translated-de --label-map map.json

Builds a set for the 15 xSID intents from ``examples/new_language.yaml``'s settings
(its template, generation, quality and backend: Gemma 3 270M continuing a list, on
openvino; ``--set backend.options.model=smollm2-135m-instruct`` for the embedded model),
with the labels replaced by the xSID intents and a description that translates each
label name (written here, not taken from any xSID row), and prints:

- TSTR: accuracy (and macro-F1) on ``../shared/eval/xsid/<lang>/dev.jsonl`` (300 real
  rows) of TF-IDF + logistic regression trained on the synthetic rows (target > 60% for
  German), next to a classifier trained on the 300 parallel English rows
  (``xsid/en/dev.jsonl``) and one trained on the translated label names alone;
- fidelity: the share of synthetic rows a judge trained on the same real dev set puts
  under their own label (the judge's held-out accuracy says how far to trust it);
- tokens per accepted row and the acceptance rate.

xSID dev (CC BY-SA 4.0) is for judging only: nothing here feeds it to generation.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from run_figures import ROOT, generate, recipe_with, reuse, shared_eval, write_json

XSID = shared_eval("xsid")

# the xSID intent -> a translation of its name, as new_language.jinja words a purpose
DESCRIPTIONS: dict[str, dict[str, str]] = {
    "de": {
        "weather/find": "nach dem Wetter zu fragen",
        "BookRestaurant": "einen Tisch in einem Restaurant zu reservieren",
        "alarm/set_alarm": "einen Wecker zu stellen",
        "PlayMusic": "Musik abspielen zu lassen",
        "SearchScreeningEvent": "nach Filmvorstellungen im Kino zu suchen",
        "alarm/cancel_alarm": "einen Wecker zu löschen",
        "SearchCreativeWork": "nach einem Film, einer Serie, einem Buch, einem Lied oder "
                              "einem Spiel zu suchen",
        "AddToPlaylist": "ein Lied oder einen Künstler zu einer Playlist hinzuzufügen",
        "RateBook": "ein Buch mit Sternen oder Punkten zu bewerten",
        "reminder/set_reminder": "sich an etwas erinnern zu lassen",
        "reminder/show_reminders": "sich ihre Erinnerungen zeigen zu lassen",
        "reminder/cancel_reminder": "eine Erinnerung zu löschen",
        "alarm/show_alarms": "sich ihre gestellten Wecker zeigen zu lassen",
        "alarm/snooze_alarm": "den Wecker auf Schlummern zu stellen",
        "alarm/modify_alarm": "die Zeit eines Weckers zu ändern",
    },
    "en": {  # an English set to translate (the built-in template words the purpose)
        "weather/find": "Ask about the weather",
        "BookRestaurant": "Book a table at a restaurant",
        "alarm/set_alarm": "Set an alarm",
        "PlayMusic": "Play music",
        "SearchScreeningEvent": "Search for movie showtimes at the cinema",
        "alarm/cancel_alarm": "Delete an alarm",
        "SearchCreativeWork": "Search for a movie, a series, a book, a song or a game",
        "AddToPlaylist": "Add a song or an artist to a playlist",
        "RateBook": "Rate a book with stars or points",
        "reminder/set_reminder": "Be reminded of something",
        "reminder/show_reminders": "Show my reminders",
        "reminder/cancel_reminder": "Delete a reminder",
        "alarm/show_alarms": "Show the alarms that are set",
        "alarm/snooze_alarm": "Snooze the alarm",
        "alarm/modify_alarm": "Change the time of an alarm",
    },
    "it": {
        "weather/find": "chiedere che tempo fa",
        "BookRestaurant": "prenotare un tavolo al ristorante",
        "alarm/set_alarm": "impostare una sveglia",
        "PlayMusic": "far partire della musica",
        "SearchScreeningEvent": "cercare gli orari dei film al cinema",
        "alarm/cancel_alarm": "cancellare una sveglia",
        "SearchCreativeWork": "cercare un film, una serie, un libro, una canzone o un "
                              "videogioco",
        "AddToPlaylist": "aggiungere una canzone o un artista a una playlist",
        "RateBook": "dare un voto in stelle o punti a un libro",
        "reminder/set_reminder": "farsi ricordare qualcosa",
        "reminder/show_reminders": "vedere i propri promemoria",
        "reminder/cancel_reminder": "cancellare un promemoria",
        "alarm/show_alarms": "vedere le sveglie impostate",
        "alarm/snooze_alarm": "posticipare la sveglia",
        "alarm/modify_alarm": "cambiare l'ora di una sveglia",
    },
}

# three requests per intent, written from the intent names (not taken from any xSID
# row), for the variant with seed examples (--examples); the English ones are the same
# requests, for the path that generates in English and translates (--language en)
EXAMPLES: dict[str, dict[str, list[str]]] = {
    "en": {
        "weather/find": ["What's the weather like in Chicago tomorrow?",
                         "Do I need an umbrella this weekend?",
                         "Will it be sunny in Denver on Saturday?"],
        "BookRestaurant": ["Book a table for four at an Italian place tonight",
                           "I'd like a table at a sushi restaurant on Saturday at 7 pm",
                           "Can you reserve a table for two at the Golden Eagle?"],
        "alarm/set_alarm": ["Set an alarm for seven o'clock",
                            "Wake me up at 5:30 tomorrow",
                            "I need an alarm in twenty minutes"],
        "PlayMusic": ["Play something by the Beatles",
                      "I want to listen to some relaxing jazz",
                      "Play the new Adele album"],
        "SearchScreeningEvent": ["What movies are playing at the cinema tonight?",
                                 "When is the new James Bond film showing at the AMC?",
                                 "Show me the movie times for Sunday near me"],
        "alarm/cancel_alarm": ["Delete my alarm for tomorrow morning",
                               "Turn off all my alarms",
                               "Remove the six o'clock alarm"],
        "SearchCreativeWork": ["Find the TV show Dark",
                               "Search for the book The Reader",
                               "I'm looking for the video game Zelda"],
        "AddToPlaylist": ["Add this song to my workout playlist",
                          "Put Taylor Swift on my party playlist",
                          "Add the current track to my favorites list"],
        "RateBook": ["Give the book Holes five stars",
                     "Rate this novel three out of five points",
                     "I give the current book four stars"],
        "reminder/set_reminder": ["Remind me tomorrow to pay the rent",
                                  "Remind me about the doctor's appointment at 6 pm",
                                  "Create a reminder to call mom"],
        "reminder/show_reminders": ["Show me my reminders for today",
                                    "What reminders do I have this week?",
                                    "Read my reminders to me"],
        "reminder/cancel_reminder": ["Delete the reminder about the dentist",
                                     "Remove all reminders for tomorrow",
                                     "I don't need the shopping reminder anymore"],
        "alarm/show_alarms": ["What alarms do I have set?",
                              "Show me all my alarms",
                              "Is there an alarm set for tomorrow morning?"],
        "alarm/snooze_alarm": ["Let me sleep ten more minutes",
                               "Snooze the alarm",
                               "Wake me again in five minutes"],
        "alarm/modify_alarm": ["Change my alarm from six to seven",
                               "Move tomorrow's alarm to 7:30",
                               "Change the wake-up time to 6:45"],
    },
    "de": {
        "weather/find": ["Wie wird das Wetter morgen in Berlin?",
                         "Brauche ich am Wochenende einen Regenschirm?",
                         "Wird es am Samstag in München sonnig?"],
        "BookRestaurant": ["Reserviere einen Tisch für vier Personen heute Abend beim Italiener.",
                           "Ich möchte für Samstag um 19 Uhr einen Tisch im Sushi-Restaurant.",
                           "Kannst du im Gasthaus Adler für zwei Personen buchen?"],
        "alarm/set_alarm": ["Stell einen Wecker für sieben Uhr.",
                            "Weck mich morgen um halb sechs.",
                            "Ich brauche einen Wecker in zwanzig Minuten."],
        "PlayMusic": ["Spiel bitte etwas von den Beatles.",
                      "Ich möchte entspannte Jazzmusik hören.",
                      "Spiel das neue Album von Adele."],
        "SearchScreeningEvent": ["Welche Filme laufen heute Abend im Kino?",
                                 "Wann läuft der neue James-Bond-Film im Cinemaxx?",
                                 "Zeig mir das Kinoprogramm für Sonntag in meiner Nähe."],
        "alarm/cancel_alarm": ["Lösch den Wecker für morgen früh.",
                               "Schalte alle meine Wecker aus.",
                               "Entferne den Wecker um sechs Uhr."],
        "SearchCreativeWork": ["Such die Serie Dark.",
                               "Finde das Buch Der Vorleser.",
                               "Ich suche das Videospiel Zelda."],
        "AddToPlaylist": ["Füge dieses Lied zu meiner Playlist Sport hinzu.",
                          "Pack Helene Fischer auf meine Party-Playlist.",
                          "Setz den aktuellen Song auf die Liste Lieblingslieder."],
        "RateBook": ["Gib dem Buch Tschick fünf Sterne.",
                     "Bewerte diesen Roman mit drei von fünf Punkten.",
                     "Ich gebe dem aktuellen Buch vier Sterne."],
        "reminder/set_reminder": ["Erinnere mich morgen daran, die Miete zu überweisen.",
                                  "Erinnere mich um 18 Uhr an den Arzttermin.",
                                  "Leg eine Erinnerung an, Mama anzurufen."],
        "reminder/show_reminders": ["Zeig mir meine Erinnerungen für heute.",
                                    "Welche Erinnerungen habe ich diese Woche?",
                                    "Lies mir meine Erinnerungen vor."],
        "reminder/cancel_reminder": ["Lösche die Erinnerung an den Zahnarzt.",
                                     "Entferne alle Erinnerungen für morgen.",
                                     "Die Erinnerung zum Einkaufen brauche ich nicht mehr."],
        "alarm/show_alarms": ["Welche Wecker habe ich gestellt?",
                              "Zeig mir alle meine Wecker.",
                              "Ist für morgen früh ein Wecker gestellt?"],
        "alarm/snooze_alarm": ["Lass mich noch zehn Minuten schlafen.",
                               "Stell den Wecker auf Schlummern.",
                               "Weck mich in fünf Minuten noch mal."],
        "alarm/modify_alarm": ["Stell meinen Wecker von sechs auf sieben Uhr um.",
                               "Verschieb den Wecker für morgen auf halb acht.",
                               "Ändere die Weckzeit auf 6:45 Uhr."],
    },
    "it": {
        "weather/find": ["Che tempo farà domani a Roma?",
                         "Mi serve l'ombrello questo fine settimana?",
                         "Sabato ci sarà il sole a Milano?"],
        "BookRestaurant": ["Prenota un tavolo per quattro stasera in pizzeria.",
                           "Vorrei un tavolo al ristorante giapponese sabato alle 20.",
                           "Puoi prenotare per due alla Trattoria da Mario?"],
        "alarm/set_alarm": ["Imposta una sveglia alle sette.",
                            "Svegliami domani alle cinque e mezza.",
                            "Mi serve una sveglia tra venti minuti."],
        "PlayMusic": ["Metti qualcosa dei Beatles.",
                      "Voglio ascoltare un po' di jazz rilassante.",
                      "Fai partire il nuovo album di Laura Pausini."],
        "SearchScreeningEvent": ["Che film danno stasera al cinema?",
                                 "Quando danno il nuovo film di James Bond all'Odeon?",
                                 "Fammi vedere gli orari del cinema per domenica qui vicino."],
        "alarm/cancel_alarm": ["Cancella la sveglia di domani mattina.",
                               "Disattiva tutte le mie sveglie.",
                               "Togli la sveglia delle sei."],
        "SearchCreativeWork": ["Cerca la serie Gomorra.",
                               "Trova il libro Il nome della rosa.",
                               "Sto cercando il videogioco Zelda."],
        "AddToPlaylist": ["Aggiungi questa canzone alla mia playlist per correre.",
                          "Metti Vasco Rossi nella playlist della festa.",
                          "Salva il brano che sta suonando tra i preferiti."],
        "RateBook": ["Dai cinque stelle al libro Io non ho paura.",
                     "Valuta questo romanzo tre punti su cinque.",
                     "Al libro che sto leggendo do quattro stelle."],
        "reminder/set_reminder": ["Ricordami domani di pagare l'affitto.",
                                  "Ricordami alle 18 l'appuntamento dal medico.",
                                  "Crea un promemoria per chiamare la mamma."],
        "reminder/show_reminders": ["Fammi vedere i promemoria di oggi.",
                                    "Che promemoria ho questa settimana?",
                                    "Leggimi i miei promemoria."],
        "reminder/cancel_reminder": ["Cancella il promemoria del dentista.",
                                     "Elimina tutti i promemoria di domani.",
                                     "Non mi serve più il promemoria della spesa."],
        "alarm/show_alarms": ["Quali sveglie ho impostato?",
                              "Fammi vedere tutte le mie sveglie.",
                              "C'è una sveglia per domani mattina?"],
        "alarm/snooze_alarm": ["Fammi dormire altri dieci minuti.",
                               "Posticipa la sveglia.",
                               "Risvegliami tra cinque minuti."],
        "alarm/modify_alarm": ["Sposta la sveglia dalle sei alle sette.",
                               "Cambia la sveglia di domani alle sette e mezza.",
                               "Metti la sveglia alle 6:45 invece che alle sei."],
    },
}

# examples/new_language_list.jinja in Italian (for `generation.style: continue`)
ITALIAN_LIST = """\
Frasi che le persone dicono a un assistente vocale per {{ label_description or label_name }}:
{% for e in examples %}
- {{ e }}
{% endfor %}
-
"""

# examples/new_language.jinja in Italian (the German one is used as it is)
ITALIAN_TEMPLATE = """\
Ecco delle frasi in italiano che le persone dicono a un assistente vocale per \
{{ label_description }}:
{% for e in examples %}
{{ loop.index }}. {{ e }}
{% endfor %}
{% if avoid %}
Queste frasi ci sono già:
{% for e in avoid %}
- {{ e }}
{% endfor %}
{% endif %}
Scrivi altre {{ n }} frasi nuove di questo tipo in italiano, una per riga.
{{ examples | length + 1 }}.
"""
SYSTEM_PROMPT = {"de": "Du schreibst kurze, natürliche Sätze auf Deutsch.",
                 "en": "You write realistic example data exactly in the format asked for.",
                 "it": "Scrivi frasi brevi e naturali in italiano."}


def label_id(xsid_label: str) -> str:
    """``alarm/set_alarm`` -> ``alarm_set_alarm`` (a slot name may not hold a slash)."""
    return xsid_label.replace("/", "_")


def xsid_settings(language: str, per_label: int, examples: bool = False) -> list[str]:
    """Recipe changes that turn examples/new_language.yaml into the xSID recipe (with
    ``examples``: three hand-written seed examples per intent, else none)."""
    import json

    if examples and language not in EXAMPLES:
        raise SystemExit(f"no seed examples written for '{language}'")
    labels = {label_id(k): {"description": v,
                            "examples": EXAMPLES[language][k] if examples else []}
              for k, v in DESCRIPTIONS[language].items()}
    english = ["template=utterances", "description=requests people say to a voice "
               "assistant"] if language == "en" else []
    return [*english, f"name=xsid-{language}", f"languages=[{language}]",
            f"labels={json.dumps(labels, ensure_ascii=False)}", f"per_label={per_label}",
            f"backend.options.system_prompt={json.dumps(SYSTEM_PROMPT[language])}"]


def recipe_file(recipe: str, language: str, out: Path) -> str:
    """The recipe to start from: for Italian, a copy beside Italian versions of
    new_language.jinja and new_language_list.jinja (a template may not leave its recipe's
    folder)."""
    if language != "it":
        return recipe
    import shutil

    folder = out.with_name(out.name + "-recipe")  # beside the output folder, not in it
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(recipe, folder / Path(recipe).name)
    (folder / "new_language.jinja").write_text(ITALIAN_TEMPLATE, encoding="utf-8")
    (folder / "new_language_list.jinja").write_text(ITALIAN_LIST, encoding="utf-8")
    return str(folder / Path(recipe).name)


def baselines(language: str, dev: Path) -> dict[str, Any]:
    """TSTR of the parallel English rows and of the translated label names, on ``dev``."""
    from textsynth.evaluation import evaluate
    from textsynth.sources import LabeledSet

    english = evaluate(XSID / "en" / "dev.jsonl", dev, embeddings=False)
    names = LabeledSet.from_pairs((v, k) for k, v in DESCRIPTIONS[language].items())
    named = evaluate(names, dev, embeddings=False)
    return {"english_300": english.accuracy, "english_300_macro_f1": english.macro_f1,
            "names_only": named.accuracy, "names_only_macro_f1": named.macro_f1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", choices=sorted(DESCRIPTIONS), default="de",
                        help="en: an English set, to translate with `textsynth translate`")
    parser.add_argument("--recipe", default=str(ROOT / "examples" / "new_language.yaml"))
    parser.add_argument("--out", default=None, help="output folder (default output/xsid-LANG)")
    parser.add_argument("--per-label", type=int, default=10)
    parser.add_argument("--examples", action="store_true", help="three hand-written seed "
                        "examples per intent (German, Italian, English)")
    parser.add_argument("--reuse", type=Path, help="a finished run's folder (or any labeled "
                        "set): nothing is generated")
    parser.add_argument("--label-map", help="synthetic=xSID,... or a JSON file (with --reuse)")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="KEY=YAML", help="further recipe changes")
    parser.add_argument("--no-embeddings", action="store_true", help="TF-IDF judge only")
    parser.add_argument("--worst", type=int, default=10)
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args()

    from textsynth.evaluation import evaluate
    from textsynth.fidelity import RealJudge

    lang = args.language
    dev = XSID / lang / "dev.jsonl"
    base = baselines(lang, dev)
    print(f"baselines on real {lang} dev (300 rows): 300 real English rows "
          f"{base['english_300']:.1%}, the translated label names alone "
          f"{base['names_only']:.1%}", flush=True)
    out = Path(args.out or ROOT / "output" / f"xsid-{lang}")
    if args.reuse:
        run = None
        if (args.reuse / "textsynth.db").is_file():
            try:
                run = reuse(args.reuse)
            except KeyError:  # a translate or paraphrase output: no recipe run summary
                run = None
        data: Any = run.data if run is not None else args.reuse
    else:
        recipe = recipe_with(recipe_file(args.recipe, lang, out), out,
                             xsid_settings(lang, args.per_label, args.examples) + args.settings)
        run = generate(recipe)
        data = out
    if run is not None:
        print(f"run: {run.line()}", flush=True)
    ev = evaluate(data, dev, label_map=args.label_map, embeddings=False)
    judge = RealJudge(dev, embeddings=False if args.no_embeddings else None)
    fid = judge.score(data, label_map=args.label_map)
    held = ", ".join(f"{k} {v:.1%}" for k, v in judge.heldout_accuracy.items())
    print(f"TSTR on real {lang} dev: accuracy {ev.accuracy:.1%}, macro-F1 {ev.macro_f1:.1%} "
          f"(trained on {ev.result().n_train} synthetic rows)")
    print(f"fidelity: {fid.fidelity:.1%} of {fid.rows} rows (judge: {judge.classifier} on "
          f"{judge.size} real {lang} rows; held-out accuracy {held})")
    for label, share in fid.per_label.items():
        print(f"  {label:<26} {share:>6.1%} of {fid.rows_per_label[label]}")
    for d in fid.disagreements[:args.worst]:
        print(f"  {d.label} -> {d.predicted} ({d.confidence:.0%}): {d.text}")
    for note in ev.notes:
        print(f"note: {note}")
    write_json(args.json, {
        "language": lang, "baselines": base, "tstr": ev.accuracy, "tstr_macro_f1": ev.macro_f1,
        "fidelity": fid.fidelity, "fidelity_per_label": fid.per_label,
        "judge": {"classifier": judge.classifier, "heldout_accuracy": judge.heldout_accuracy},
        "rows": fid.rows, "tokens_per_row":
        run.tokens_per_row if run else None, "acceptance": run.acceptance if run else None,
    })


if __name__ == "__main__":
    main()
