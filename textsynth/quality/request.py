"""Is a candidate something a user would say to get something done?

A small model asked for "requests people send" also writes narration ("She
turned on the kitchen light."), jokes, questions addressed to the user ("What
kind of music do you like?"), descriptions of the task ("Requests to change the
temperature."), lists of options and bare topics. This rule tells them apart
without a large model: a logistic regression over all-MiniLM-L6-v2 embeddings,
fitted once on the hand-written prototypes below (requests from many domains,
and each kind of non-request), plus a few cues no embedding needs (a list of
options, a heading). A candidate whose probability of being a request falls
below ``min_probability`` is dropped as ``not_a_request``.

The prototypes are generic on purpose: no benchmark's data, and requests from
domains far apart (travel, banking, shopping, cooking, devices), so that the
boundary learnt is "request or not", not "which topic".
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from textsynth._deps import require
from textsynth.example import Example
from textsynth.quality.base import KEEP, Rule, Verdict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from textsynth.quality.semantic import Embedder

__all__ = ["NON_REQUESTS", "REQUESTS", "RequestFilter"]

REQUESTS = (
    "Turn the radio down a bit.",
    "Can you remind me to call my sister at six?",
    "Book me a flight to Lisbon next Friday.",
    "I need a taxi to the airport at 5 am.",
    "What's my checking account balance?",
    "Transfer 200 dollars to my savings account.",
    "Order a large pepperoni pizza for delivery.",
    "Add eggs and milk to my shopping list.",
    "How long do I boil an egg?",
    "Find me a recipe for vegetable soup.",
    "Show me hotels near the beach in Nice.",
    "Please cancel my dentist appointment tomorrow.",
    "Could you read me my new messages?",
    "Send a text to Mom saying I'll be late.",
    "Set a timer for ten minutes.",
    "Will it snow in Denver this weekend?",
    "Navigate to the nearest gas station.",
    "Put on something relaxing.",
    "Open the garage door.",
    "Dim the bedroom lamp to half.",
    "I'd like to track my package.",
    "Where is the closest pharmacy that's open now?",
    "Translate 'good morning' into Japanese.",
    "Schedule a meeting with Alex on Monday at 10.",
    "Pay my electricity bill.",
    "Can I get a refund for my last order?",
    "Make the living room warmer.",
    "Start the vacuum cleaner.",
    "Call the office.",
    "What time does the post office close today?",
    "Find a cheap Italian place for four people tonight.",
    "Wake me up at seven thirty.",
    "Skip this track.",
    "Reserve two seats for the 8 pm show.",
    "Give the novel I just finished four stars.",
    "Lock the back door please.",
    "hey, can you switch off the hallway light",
    "yo play that new drake song",
    "I want to change my PIN.",
    "Look up the movie times for Saturday.",
    "Is the 42 bus running late?",
    "Please turn the heating off when I leave.",
    "Mute the TV.",
    "Check if my card was charged twice.",
    "Find the album Blue by Joni Mitchell.",
    "add Hotel California to my road trip mix",
    "play something by Ella Fitzgerald from 1956",
    "rate Pride and Prejudice five stars",
    "forecast for Reykjavik on March 3rd",
    "is Dune showing at the Odeon tonight",
    "get me the soundtrack of The Lion King",
    "table for 6 at a sushi bar in Osaka at 8pm",
    "weather in Nairobi next week",
    "find the TV series Breaking Bad",
    "Play the latest episode of the Daily podcast.",
    "buy tickets for Hamilton on Broadway",
    "show me my Uber rides from last month",
    "What's the exchange rate from euros to yen?",
    "Directions to Union Station avoiding tolls.",
    "Restart the router.",
    "Put Taylor Swift on my Sunday morning playlist.",
    "how many calories are in an avocado",
    "Text Priya that the meeting moved to Thursday.",
)

NON_REQUESTS = (
    # narration and description of what someone did
    "She walked into the kitchen and turned on the light.",
    "The family sat down and listened to music all evening.",
    "He set his alarm and went to bed early.",
    "Saying hello to the guest.",
    "A teenager asks the assistant to play a song.",
    "The elderly man locked the door before going to sleep.",
    "Yesterday we booked a table at a lovely restaurant.",
    "The thermostat was set to 21 degrees.",
    # jokes, chatter, opinions, feelings
    "This is a funny joke.",
    "Why did the chicken cross the road? To get to the other side!",
    "I love sunny days.",
    "Haha, that's hilarious.",
    "Music makes everything better.",
    "What a beautiful morning it is.",
    "Thank you so much, you're the best!",
    "Good night everyone.",
    # questions addressed to the user, assistant talk
    "What kind of music do you like?",
    "What's that?",
    "Would you like me to turn on the lights?",
    "How can I help you today?",
    "Sure! Here are some requests you could use:",
    "I'm sorry, I can't do that.",
    "Do you want to hear a song?",
    "Is there anything else I can help you with?",
    # descriptions of the task, meta-text, labels
    "Requests to adjust your heating or cooling temperature.",
    "Commands people give a smart-home voice assistant.",
    "A polite question asking to book a restaurant.",
    "Short command to play music.",
    "Example of a request to set an alarm.",
    "Intent: turn on lights.",
    "These are requests a user might send.",
    "The user wants to know the weather.",
    # lists of options, topics, fragments
    "Options: jazz, rock, pop or classical.",
    "Lights, alarm, music, thermostat.",
    "1. Morning 2. Afternoon 3. Evening",
    "Music, weather, alarms and lights.",
    "The song is about love and loss.",
    "It is raining outside and the streets are wet.",
    "My favourite band is Coldplay.",
    "I think this playlist is great.",
    "The restaurant was fully booked last night.",
    "Once upon a time there was a little robot.",
    "You are a helpful voice assistant.",
    "Here is a list of requests.",
    "How are you doing today?",
    "What's your name?",
    "Tell me about yourself.",
    # negated or opposite requests, refusals of the user
    "No, don't do anything.",
    "Never mind.",
    "No thanks, I'm fine.",
)

_LIST = re.compile(r"^\s*(options?|choices?|examples?|intent|label|category)\s*:", re.I)
_MANY_COMMAS = re.compile(r"^[^,.!?]{1,30}(,[^,.!?]{1,30}){3,}\.?$")


class RequestFilter(Rule):
    """Drops narration, chatter, questions to the user, meta-text and option lists."""

    name = "request"
    needs_prepare = True

    def __init__(self, embedder: Embedder, min_probability: float = 0.3):
        super().__init__()
        self.embedder = embedder
        self.min_probability = min_probability
        self._model: Any = None
        self._probs: dict[str, float] = {}

    def _fit(self) -> Any:
        linear = require("sklearn.linear_model", "the request filter")
        LogisticRegression = linear.LogisticRegression
        texts = list(REQUESTS) + list(NON_REQUESTS)
        y = [1] * len(REQUESTS) + [0] * len(NON_REQUESTS)
        model = LogisticRegression(C=20.0, max_iter=3000, class_weight="balanced")
        model.fit(self.embedder.encode(texts), y)
        return model

    async def prepare(self, examples: Sequence[Example]) -> None:
        if self._model is None:
            self._model = self._fit()
        texts = list(dict.fromkeys(e.text for e in examples if e.text not in self._probs))
        if not texts:
            return
        if len(self._probs) > 8192:
            self._probs.clear()
        probs = self._model.predict_proba(self.embedder.encode(texts))[:, 1]
        self._probs.update(zip(texts, (float(p) for p in probs), strict=True))

    def check(self, example: Example) -> Verdict:
        text = example.text
        if _LIST.match(text) or _MANY_COMMAS.match(text):
            return Verdict(False, "not_a_request", "a list of options")
        if text not in self._probs:
            from textsynth.errors import TextsynthError

            raise TextsynthError("the request filter needs `await gate.prepare(candidates)` "
                                 "before `gate.check(candidate)`")
        p = self._probs[text]
        if p < self.min_probability:
            return Verdict(False, "not_a_request", f"p(request)={p:.2f}")
        return KEEP
