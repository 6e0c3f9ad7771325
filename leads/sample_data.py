"""Plausible names, companies and values for the demo account and the benchmarks (no Django imports)."""

FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Linus",
    "Guido",
    "Radia",
    "Ken",
    "Frances",
    "John",
    "Sophie",
    "Tim",
    "Katherine",
    "Dennis",
    "Hedy",
    "Niklaus",
    "Shafi",
]
LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Torvalds",
    "Rossum",
    "Perlman",
    "Thompson",
    "Allen",
    "McCarthy",
    "Wilson",
    "Berners-Lee",
    "Johnson",
    "Ritchie",
    "Lamarr",
    "Wirth",
    "Goldwasser",
]
COMPANIES = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Vandelay",
]
TITLES = ["CTO", "VP Engineering", "Head of Sales", "Developer", "Founder", "Product Manager", "RevOps Lead"]
COUNTRIES = ["DE", "US", "GB", "FR", "NL", "SE", "ES", "IT", "CA", "AU"]
SOURCES = ["web_form", "import", "partner:acme", "webinar", "referral"]
TAGS = ["enterprise", "smb", "hot", "newsletter", "conference", "trial", "churn-risk"]
CITIES = ["Berlin", "New York", "London", "Paris", "Amsterdam", "Stockholm", "Madrid", "Rome", "Toronto"]
