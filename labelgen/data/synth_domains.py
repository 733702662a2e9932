"""What the synthetic users and system say: domains, intents, slots, values and phrasings.

User templates name slots as `{slot}` and slot answers use `{v}` for the value; the generator
fills them and records exact character spans. System templates may also use `{result}`. Intent
and act names follow the Schema-Guided Dialogue dataset, so synthetic logs and SGD share labels.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    values: tuple[str, ...]
    ask: str
    """What the system says to request the slot."""
    answers: tuple[str, ...] = ("{v}", "{v} please", "it's {v}")
    """How the user answers `ask`; `{v}` stands for the value."""


@dataclass(frozen=True)
class Intent:
    name: str
    required: tuple[str, ...]
    """Slots the system asks for until they are filled; other slots are only volunteered."""
    openers: tuple[str, ...]
    """How the user states the intent; every slot named here is informed with it."""
    task: str
    """A verb phrase over the required slots, for "Should I {task}?" and "I could not {task}"."""
    done: str
    """What the system says when the goal succeeds."""
    confirm: bool = False
    """Transactions are confirmed before they run."""
    offer: bool = False
    """Searches offer results, one at a time, which the user may turn down."""
    results: tuple[str, ...] = ()


@dataclass(frozen=True)
class Domain:
    name: str
    slots: dict[str, Slot]
    intents: tuple[Intent, ...]


CITIES = ("San Francisco", "New York", "Seattle", "Chicago", "Paris", "London", "Tokyo")
DATES = ("today", "tomorrow", "this Friday", "next Monday", "this weekend")
_city = Slot(CITIES, "Which city?", ("in {v}", "{v}", "I'm in {v}"))
_date = Slot(DATES, "For which day?", ("{v}", "{v} please", "for {v}"))

RESTAURANTS = Domain(
    "Restaurants",
    {
        "restaurant_name": Slot(
            ("Nopa", "Zuni Cafe", "Delfina", "Tartine", "Foreign Cinema", "Kin Khao"),
            "Which restaurant would you like?",
            ("{v}", "at {v}", "let's do {v}"),
        ),
        "city": _city,
        "cuisine": Slot(
            ("Italian", "Mexican", "Thai", "Indian", "Japanese", "vegetarian"),
            "What kind of food are you in the mood for?",
            ("{v}", "{v} food", "something {v}"),
        ),
        "time": Slot(
            ("6 pm", "6:30 pm", "7 pm", "7:45 pm", "8 pm", "noon"),
            "What time should the reservation be?",
            ("at {v}", "{v}", "{v} would be great"),
        ),
        "party_size": Slot(
            ("2", "3", "4", "5", "6"),
            "How many people will be dining?",
            ("{v} people", "for {v}", "a table for {v}"),
        ),
        "date": _date,
    },
    (
        Intent(
            "FindRestaurants",
            ("city", "cuisine"),
            (
                "find me a {cuisine} restaurant in {city}",
                "I'm looking for somewhere to eat in {city}",
                "are there any good {cuisine} places around",
                "I want to find a restaurant",
            ),
            task="find a {cuisine} restaurant in {city}",
            done="Great, I sent the address of {result} to your phone.",
            offer=True,
            results=("Nopa", "Delfina", "Dosa", "Kin Khao", "Flour + Water"),
        ),
        Intent(
            "ReserveRestaurant",
            ("restaurant_name", "party_size", "time"),
            (
                "book a table at {restaurant_name}",
                "I'd like a table for {party_size} at {restaurant_name} at {time}",
                "can you reserve a table for {date}",
                "make a reservation at {restaurant_name} {date} at {time}",
                "I want to book a restaurant",
            ),
            task="book a table for {party_size} at {restaurant_name} at {time}",
            done="Your table at {restaurant_name} is booked for {time}.",
            confirm=True,
        ),
    ),
)

MUSIC = Domain(
    "Music",
    {
        "song": Slot(
            ("Hello", "Bad Guy", "Yesterday", "Blinding Lights", "Shallow", "Halo"),
            "Which song would you like to hear?",
            ("{v}", "play {v}", "the song {v}"),
        ),
        "artist": Slot(
            ("Adele", "Billie Eilish", "The Beatles", "The Weeknd", "Beyonce"),
            "Which artist?",
            ("{v}", "something by {v}", "{v} please"),
        ),
        "genre": Slot(
            ("jazz", "pop", "rock", "classical", "hip hop"),
            "What genre are you in the mood for?",
            ("{v}", "some {v}", "{v} music"),
        ),
        "device": Slot(("living room", "kitchen", "bedroom"), "On which speaker?"),
    },
    (
        Intent(
            "PlayMedia",
            ("song",),
            (
                "play {song}",
                "play {song} by {artist}",
                "put on {song} in the {device}",
                "I want to hear some music",
            ),
            task="play {song}",
            done="Playing {song} now.",
        ),
        Intent(
            "LookupMusic",
            ("genre",),
            (
                "find me some {genre} songs",
                "what {genre} songs by {artist} do you have",
                "recommend me some music",
            ),
            task="find {genre} songs",
            done="Adding {result} to your queue.",
            offer=True,
            results=(
                "Hello by Adele",
                "Bad Guy by Billie Eilish",
                "So What by Miles Davis",
                "Clair de Lune by Debussy",
            ),
        ),
    ),
)

WEATHER = Domain(
    "Weather",
    {"city": _city, "date": _date},
    (
        Intent(
            "GetWeather",
            ("city",),
            (
                "what's the weather in {city}",
                "will it rain in {city} {date}",
                "how's the weather looking {date}",
                "weather forecast please",
            ),
            task="get the weather for {city}",
            done="It will be {result} in {city}.",
            results=(
                "sunny and 24 degrees",
                "cloudy with light rain",
                "windy, around 15 degrees",
                "clear, 19 degrees",
            ),
        ),
        Intent(
            "GetAirQuality",
            ("city",),
            ("how's the air quality in {city}", "is the air clean today", "check the air quality"),
            task="check the air quality in {city}",
            done="Air quality in {city} is {result} right now.",
            results=("good", "moderate", "poor"),
        ),
    ),
)

FLIGHTS = Domain(
    "Flights",
    {
        "origin_city": Slot(CITIES, "Where are you flying from?", ("from {v}", "{v}")),
        "destination_city": Slot(CITIES, "Where do you want to go?", ("to {v}", "{v}")),
        "departure_date": Slot(DATES, "When do you want to leave?", ("{v}", "leaving {v}")),
        "seating_class": Slot(
            ("economy", "premium economy", "business"), "Which class would you like?"
        ),
        "airline": Slot(("Delta", "United", "Alaska", "JetBlue"), "Any preferred airline?"),
    },
    (
        Intent(
            "SearchOnewayFlight",
            ("origin_city", "destination_city", "departure_date"),
            (
                "find a flight from {origin_city} to {destination_city}",
                "I need to fly to {destination_city} {departure_date}",
                "search for {airline} flights to {destination_city}",
                "I'm looking for a one-way flight",
            ),
            task="find a flight from {origin_city} to {destination_city} {departure_date}",
            done="I've saved {result} for you.",
            offer=True,
            results=(
                "a Delta flight at 6:40 am for $289",
                "a United flight at 11:15 am for $312",
                "an Alaska flight at 5:30 pm for $245",
            ),
        ),
        Intent(
            "ReserveOnewayFlight",
            ("origin_city", "destination_city", "departure_date", "seating_class"),
            (
                "book a ticket in {seating_class} from {origin_city} to {destination_city}",
                "reserve a flight to {destination_city} {departure_date}",
                "I want to book a flight",
            ),
            task="book a flight in {seating_class} from {origin_city} to {destination_city} "
            "{departure_date}",
            done="Your {seating_class} ticket to {destination_city} is booked.",
            confirm=True,
        ),
    ),
)

ALARM = Domain(
    "Alarm",
    {
        "alarm_time": Slot(
            ("6 am", "6:30 am", "7:15 am", "8 am", "9:45 pm"),
            "What time should the alarm go off?",
            ("{v}", "at {v}", "set it for {v}"),
        ),
        "alarm_name": Slot(("work", "gym", "medicine", "school run"), "What should I call it?"),
    },
    (
        Intent(
            "AddAlarm",
            ("alarm_time",),
            (
                "set an alarm for {alarm_time}",
                "wake me up at {alarm_time}",
                "add a {alarm_name} alarm at {alarm_time}",
                "I need an alarm called {alarm_name}",
                "set an alarm",
            ),
            task="set an alarm for {alarm_time}",
            done="Your alarm is set for {alarm_time}.",
            confirm=True,
        ),
        Intent(
            "GetAlarms",
            (),
            ("what alarms do I have", "show me my alarms", "do I have any alarms set"),
            task="get your alarms",
            done="You have one alarm, at {result}.",
            results=("6 am", "7:30 am", "10 pm"),
        ),
    ),
)

DOMAINS = (RESTAURANTS, MUSIC, WEATHER, FLIGHTS, ALARM)
NO_INTENT = "NONE"
"""The intent of an utterance that pursues no goal (SGD's name for it)."""
NO_DOMAIN = "General"

OPENINGS = ("Hi, how can I help you?", "Hello! What can I do for you today?", "How can I help?")
SMALL_TALK = (
    ("hi there, how are you", "I'm doing well, thanks! What can I do for you?"),
    ("good morning", "Good morning! How can I help?"),
    ("are you there", "Yes, I'm here. What do you need?"),
)
FIRST_GOAL_PREFIXES = ("", "", "hi, ", "hey, ")
NEXT_GOAL_PREFIXES = ("", "yes, ", "also ", "one more thing, ")
REPHRASE_PREFIXES = ("", "I meant ", "I said ")
NEGATE_PREFIXES = ("no, ", "no no, ", "that's not what I asked, ")
INFORM_REPEAT_PREFIXES = ("", "I said ")
CORRECTIONS = ("no, {v}", "no, I said {v}", "no no, {v}")
REPEAT_REQUESTS = ("Sorry, I didn't catch that. Could you say it again?", "Sorry, what was that?")
AFFIRMS = ("yes", "yes please", "that's right", "correct", "yep, go ahead")
ACCEPTS = ("sounds good", "yes, that one", "perfect", "sure")
REQUEST_ALTS = ("anything else?", "something different please", "what else is there")
FEEDBACK_QUESTIONS = ("Did I answer your question?", "Was that helpful?")
FEEDBACK_YES = (("yes, thanks", ["AFFIRM", "THANK_YOU"]), ("yep", ["AFFIRM"]))
FEEDBACK_NO = (("no, not really", ["NEGATE"]), ("no", ["NEGATE"]))
CLOSINGS = (
    ("no, that's all, thanks", ["NEGATE", "THANK_YOU"]),
    ("thanks, bye", ["THANK_YOU", "GOODBYE"]),
    ("that's it, thank you", ["THANK_YOU"]),
)
