#!/usr/bin/env python3
"""Write ``src/taalm/keep_data/general_facts.jsonl``: general-knowledge probe sentences, written by
us, from which :mod:`taalm.evaluation.keep` selects, per base model, the facts it already
answers (the "kept" probe set every run measures). Each row: id, prompt (the sentence), answer
(its last words). Run from the repository root; the output is committed."""

import json
from pathlib import Path

CAPITALS = """France Paris|Germany Berlin|Italy Rome|Spain Madrid|Portugal Lisbon|Russia Moscow|Japan Tokyo|
China Beijing|India New Delhi|Egypt Cairo|Greece Athens|Austria Vienna|Sweden Stockholm|Norway Oslo|
Finland Helsinki|Denmark Copenhagen|Poland Warsaw|Hungary Budapest|Ireland Dublin|Belgium Brussels|
the Netherlands Amsterdam|Canada Ottawa|Mexico Mexico City|Argentina Buenos Aires|Peru Lima|Chile Santiago|
Colombia Bogotá|Venezuela Caracas|Cuba Havana|Kenya Nairobi|Nigeria Abuja|Ethiopia Addis Ababa|
Turkey Ankara|Iran Tehran|Iraq Baghdad|Syria Damascus|Israel Jerusalem|Saudi Arabia Riyadh|Thailand Bangkok|
Vietnam Hanoi|South Korea Seoul|North Korea Pyongyang|Indonesia Jakarta|the Philippines Manila|
Australia Canberra|New Zealand Wellington|Pakistan Islamabad|Afghanistan Kabul|Ukraine Kyiv|Romania Bucharest|
Bulgaria Sofia|Serbia Belgrade|Croatia Zagreb|the Czech Republic Prague|Switzerland Bern|Scotland Edinburgh|
Wales Cardiff|England London|Iceland Reykjavik|Morocco Rabat|Algeria Algiers|Tunisia Tunis|Libya Tripoli|
Lebanon Beirut|Jordan Amman|Nepal Kathmandu|Bangladesh Dhaka|Malaysia Kuala Lumpur|Singapore Singapore|
Cambodia Phnom Penh|Mongolia Ulaanbaatar|Ghana Accra|Senegal Dakar|Uganda Kampala|Zimbabwe Harare|
Ecuador Quito|Bolivia La Paz|Uruguay Montevideo|Paraguay Asunción|Jamaica Kingston|Estonia Tallinn|
Latvia Riga|Lithuania Vilnius|Belarus Minsk|Georgia Tbilisi|Armenia Yerevan|Qatar Doha|Oman Muscat"""

LANGUAGES = """France French|Germany German|Italy Italian|Spain Spanish|Portugal Portuguese|Russia Russian|
Japan Japanese|China Chinese|Brazil Portuguese|Mexico Spanish|Greece Greek|Sweden Swedish|Norway Norwegian|
Finland Finnish|Poland Polish|Hungary Hungarian|Turkey Turkish|Iran Persian|Israel Hebrew|Egypt Arabic|
South Korea Korean|Thailand Thai|Vietnam Vietnamese|the Netherlands Dutch|Denmark Danish|Argentina Spanish|
Austria German|Ukraine Ukrainian|Romania Romanian|Czech Republic Czech"""

CONTINENTS = """France Europe|Germany Europe|Kenya Africa|Nigeria Africa|Egypt Africa|Japan Asia|China Asia|
India Asia|Brazil South America|Argentina South America|Peru South America|Canada North America|
Mexico North America|Spain Europe|Italy Europe|Thailand Asia|Morocco Africa|Chile South America|
Ghana Africa|Vietnam Asia"""

CITY_COUNTRY = """Paris France|Berlin Germany|Munich Germany|Hamburg Germany|Milan Italy|Venice Italy|
Naples Italy|Barcelona Spain|Seville Spain|Lyon France|Marseille France|Manchester England|Liverpool England|
Glasgow Scotland|Toronto Canada|Montreal Canada|Vancouver Canada|Chicago the United States|
Boston the United States|Los Angeles the United States|Sydney Australia|Melbourne Australia|Osaka Japan|
Kyoto Japan|Shanghai China|Mumbai India|Istanbul Turkey|Rio de Janeiro Brazil|São Paulo Brazil|
St. Petersburg Russia|Krakow Poland|Zurich Switzerland|Geneva Switzerland|Rotterdam the Netherlands|
Porto Portugal|Alexandria Egypt|Casablanca Morocco|Cape Town South Africa|Johannesburg South Africa|
Dubai the United Arab Emirates"""

SENTENCES = [
    ("The largest planet in the solar system is", "Jupiter"),
    ("The planet closest to the Sun is", "Mercury"),
    ("The planet known as the Red Planet is", "Mars"),
    ("The natural satellite of the Earth is the", "Moon"),
    ("Water is made of hydrogen and", "oxygen"),
    ("The chemical symbol for gold is", "Au"),
    ("The chemical symbol for iron is", "Fe"),
    ("The chemical symbol for sodium is", "Na"),
    ("The gas that plants take in from the air is carbon", "dioxide"),
    ("The longest river in Africa is the", "Nile"),
    ("The largest ocean on Earth is the", "Pacific Ocean"),
    ("The highest mountain in the world is Mount", "Everest"),
    ("The largest desert in Africa is the", "Sahara"),
    ("The author of Romeo and Juliet is William", "Shakespeare"),
    ("The author of Hamlet is William", "Shakespeare"),
    ("The theory of relativity was developed by Albert", "Einstein"),
    ("The Mona Lisa was painted by Leonardo da", "Vinci"),
    ("The first man to walk on the Moon was Neil", "Armstrong"),
    ("The first president of the United States was George", "Washington"),
    ("The composer of the Moonlight Sonata was Ludwig van", "Beethoven"),
    ("Charles Darwin is known for the theory of", "evolution"),
    ("Isaac Newton is known for the law of universal", "gravitation"),
    ("The Eiffel Tower is located in", "Paris"),
    ("The Colosseum is located in", "Rome"),
    ("The Statue of Liberty is located in New", "York"),
    ("The Great Wall is located in", "China"),
    ("The Taj Mahal is located in", "India"),
    ("The Kremlin is located in", "Moscow"),
    ("Big Ben is located in", "London"),
    ("The Acropolis is located in", "Athens"),
    ("The currency of Japan is the", "yen"),
    ("The currency of the United Kingdom is the pound", "sterling"),
    ("The currency of the United States is the", "dollar"),
    ("The currency of India is the", "rupee"),
    ("The currency of Russia is the", "ruble"),
    ("The currency of China is the", "yuan"),
    ("A baby cat is called a", "kitten"),
    ("A baby dog is called a", "puppy"),
    ("The fastest land animal is the", "cheetah"),
    ("The largest animal on Earth is the blue", "whale"),
    ("Bees make", "honey"),
    ("A spider has eight", "legs"),
    ("The freezing point of water is zero degrees", "Celsius"),
    ("The human heart pumps", "blood"),
    ("The hardest natural substance is", "diamond"),
    ("Microsoft was founded by Bill", "Gates"),
    ("Apple was founded by Steve", "Jobs"),
    ("Facebook was founded by Mark", "Zuckerberg"),
    ("The iPhone is made by", "Apple"),
    ("The Windows operating system is made by", "Microsoft"),
    ("Toyota is a car company from", "Japan"),
    ("Volkswagen is a car company from", "Germany"),
    ("Ferrari is a car company from", "Italy"),
    ("The official language of Brazil is", "Portuguese"),
    ("The Olympic Games began in ancient", "Greece"),
    ("Christmas is celebrated on the 25th of", "December"),
    ("The first month of the year is", "January"),
    ("The day after Monday is", "Tuesday"),
    ("A week has seven", "days"),
    ("A year has twelve", "months"),
    ("The opposite of hot is", "cold"),
    ("The color of the sky on a clear day is", "blue"),
    ("The color of grass is", "green"),
    ("The sun rises in the", "east"),
    ("The sun sets in the", "west"),
    ("Football is played with a", "ball"),
    ("The instrument with black and white keys is the", "piano"),
    ("Pizza comes from", "Italy"),
    ("Sushi comes from", "Japan"),
    ("The Amazon rainforest is mostly in", "Brazil"),
    ("The Alps are a mountain range in", "Europe"),
    ("The Andes are a mountain range in South", "America"),
    ("The Himalayas are a mountain range in", "Asia"),
    ("Mount Fuji is a mountain in", "Japan"),
    ("The Thames flows through", "London"),
    ("The Seine flows through", "Paris"),
    ("The Danube flows into the Black", "Sea"),
    ("Harry Potter was written by J. K.", "Rowling"),
    ("The Odyssey was written by", "Homer"),
    ("Don Quixote was written by Miguel de", "Cervantes"),
    ("War and Peace was written by Leo", "Tolstoy"),
    ("Sherlock Holmes was created by Arthur Conan", "Doyle"),
    ("The Beatles were a band from", "Liverpool"),
    ("Mozart was born in", "Salzburg"),
    ("Napoleon Bonaparte was born on the island of", "Corsica"),
    ("Pablo Picasso was born in", "Spain"),
    ("Vincent van Gogh was a painter from the", "Netherlands"),
    ("Frida Kahlo was a painter from", "Mexico"),
    ("Wolfgang Amadeus Mozart was a famous", "composer"),
    ("Albert Einstein was a famous", "physicist"),
    ("Marie Curie won the Nobel Prize in", "Physics"),
]


def rows() -> list[dict]:
    out: list[dict] = []

    def add(kind: str, prompt: str, answer: str) -> None:
        out.append({"id": f"{kind}-{len(out):03d}", "prompt": f"{prompt} {answer}.", "answer": answer})

    def pairs(block: str) -> list[tuple[str, str]]:
        items = [x.strip() for x in block.replace("\n", "").split("|") if x.strip()]
        return [tuple(x.rsplit(" ", 1)) if x.count(" ") == 1 else _split(x) for x in items]

    for country, city in pairs(CAPITALS):
        add("capital", f"The capital of {country} is", city)
    for country, lang in pairs(LANGUAGES):
        add("language", f"The official language of {country} is", lang)
    for country, cont in pairs(CONTINENTS):
        add("continent", f"{country} is a country in", cont)
    for city, country in pairs(CITY_COUNTRY):
        add("city", f"{city} is a city in", country)
    for prompt, answer in SENTENCES:
        add("fact", prompt, answer)
    return out


# two-word names on either side: the known multi-word ones
_MULTI = ("New Delhi", "Mexico City", "Buenos Aires", "Addis Ababa", "Kuala Lumpur", "Phnom Penh", "La Paz",
          "South America", "North America", "South Korea", "North Korea", "Saudi Arabia", "New Zealand",
          "the Czech Republic", "Czech Republic", "the Netherlands", "the Philippines", "the United States",
          "the United Arab Emirates", "South Africa", "Los Angeles", "Rio de Janeiro", "São Paulo",
          "St. Petersburg", "Cape Town")


def _split(item: str) -> tuple[str, str]:
    for m in _MULTI:
        if item.endswith(" " + m):
            return item[: -len(m) - 1], m
    for m in _MULTI:
        if item.startswith(m + " "):
            return m, item[len(m) + 1:]
    raise ValueError(f"cannot split {item!r}")


if __name__ == "__main__":
    dest = Path("src/taalm/keep_data/general_facts.jsonl")
    rs = rows()
    dest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rs), encoding="utf-8")
    print(f"wrote {len(rs)} facts to {dest}")
