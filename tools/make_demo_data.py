"""Writes assets/data/sandbox_demo: a small, synthetic, template-made dataset in the shape of Stable Alignment's
sandbox-society data (Imitation / Self-Critic / Realignment conversations), for Agora's demo and tests only.

The questions come from the Stable Alignment question pool (Apache-2.0; HH-RLHF red-team questions, many of them
harmful on purpose). No real sandbox answers are available, so every answer, peer feedback, rating and revision
is filled in from the hand-written templates below, after a keyword rule has put the question in a category.
The data imitates the sandbox's data shape, not its content: it is not for real alignment training.

Deterministic: python3 standard library only, fixed seed; rerunning it rewrites byte-identical files. Rerun only
to change the demo data; its output is committed.

usage: python3 tools/make_demo_data.py [--pool ../shared/data/stable-alignment/question.txt] [--out DIR]
"""
import argparse
import collections
import json
import os
import random
import re
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_POOL = os.path.join(os.path.dirname(ROOT), "shared", "data", "stable-alignment", "question.txt")
DEFAULT_OUT = os.path.join(ROOT, "assets", "data", "sandbox_demo")

SEED = 20230526          # Stable Alignment's arXiv date; any fixed value does
N_TRAIN = {"imitation": 430, "self_critic": 85, "realignment": 85}   # 600, about 5:1:1 like the released data
N_VALID = {"imitation": 42, "self_critic": 9, "realignment": 9}      # 60
MAX_QUESTION_CHARS = 200
SYSTEM_FRACTION = 0.25

SYSTEM_ANSWER = ("You are Agent {agent} in a sandbox society. Answer in line with shared social values: "
                 "harmless, unbiased, honest and helpful.")
SYSTEM_RATE = ("You are Agent {agent} in a sandbox society. Judge answers by shared social values: "
               "harmless, unbiased, honest and helpful.")
ASK_CRITIC = "Please comment on the response in terms of how well it is aligned with shared social values."
ASK_REALIGN = ("Please first comment on this response, and then revise it to make it better aligned with shared "
               "social values.")
REVISED_JOIN = " Here is the revised response: "

# Questions left out of the demo files entirely: slurs and the most graphic sexual wording. The demo needs the
# data shape, not the worst of the red-team pool.
SKIP = re.compile(r"\b(n[i1]gg\w*|fag\w*|retard\w*|cunt\w*|kike\w*|spic\w*|chink\w*|pussy|cock|dick\w*|"
                  r"semen|genital\w*|porn\w*|rape\w*|raping|child\w* (?:sex|porn)|molest\w*|pedo\w*|"
                  r"incest|bestiality|tranny|wetback\w*|gook\w*)\b", re.I)

# Topics for opinion answers: "what do you think about X?" etc. (slot "{topic}").
TOPIC = re.compile(r"\b(?:think|opinion|feel|views?|thoughts) (?:about|of|on|regarding) ([^?.!,]{3,60})", re.I)

# ---------------------------------------------------------------------------------------------------------------
# Categories: (name, [(regex, slot text)]). The first category with a matching rule wins; the slot text fills
# "{act}" (what the user asks about) or "{group}" in that category's templates. Order matters.
# ---------------------------------------------------------------------------------------------------------------
RULES = [
    ("violence", [(r"\bmurder\w*", "murder")]),   # before self_harm: "make a murder look like a suicide"
    ("self_harm", [
        (r"\bkill(ing)? myself\b|\bsuicid\w*|\bend it all\b|\bend my (own )?life\b|\bhurt(ing)? myself\b|"
         r"\bself[- ]harm\w*|\bcut(ting)? myself\b|\bwant to die\b|\boverdos\w*|\bshoot myself\b|\bhang myself\b",
         "hurting yourself"),
    ]),
    ("weapons", [
        (r"\b(pipe )?bombs?\b|\bexplosi\w+|\bgrenades?\b|\bdynamite\b|\bnapalm\b|\bmolotov\b", "making explosives"),
        (r"\bguns?\b|\bfirearms?\b|\brifles?\b|\bpistols?\b|\bammo\b|\bbullets?\b|\bsilencer\b",
         "getting or using a gun"),
        (r"\bpoison\w*|\bcyanide\b|\barsenic\b|\bricin\b|\bantifreeze\b", "poisoning someone"),
        (r"\b(knife|knives|machete|axe|sword)\b.*\b(someone|somebody|kill\w*|person|people|throat|mug|head)\b|"
         r"\bweapons?\b|\bnuke\b|\bblow up\b|\btrip ?wire\b", "using a weapon on someone"),
        (r"\barson\b|\bset \w+( \w+)? on fire\b|\bset (a )?fire\b|\bburn (down|\w+'s)\b|\baccelerant\b",
         "setting a fire"),
    ]),
    ("violence", [
        (r"\bkill\w*|\bassass?in\w*|\bgenocide\b|\b(dead|a) body\b|\bdismember\w*|\boverboard\b|\blook like an accident\b",
         "killing someone"),
        (r"\bkidnap\w*|\babduct\w*|\bhostage\b|\bransom\b|\blure (a|the|some)\b", "kidnapping"),
        (r"\broofie\w*|\bspike\b|\bdrug (someone|somebody|my|her|his)\b|\bpass out\b|\bincapacitat\w*|\bmake (someone|"
         r"somebody|him|her|them|a person) sick\b", "drugging or disabling someone"),
        (r"\btortur\w*", "torture"),
        (r"\bstab\w*|\bstrangl\w*|\bchok(e|ing)\b|\bdrown\w*", "attacking someone"),
        (r"\bpunch(ing|ed)? (someone|somebody|him|her|them|my|a|people|me|you)\b|\bbeat(ing)? (up|my|him|her|them|someone|a)\b|\bhit (my|him|her|them|someone|a)\b|"
         r"\bslap\w*|\bfight\w*|\bknock \w+ (out|unconscious)\b|\bunconscious\b|"
         r"\bbreak (a |an |my |his |her |their |the |some )?\w+('s|s')? (bones?|legs?|arms?|nose|neck|jaw|hand|"
         r"fingers?)\b|\bcripple\b|\bambush\b|\bdraw and quarter\b|\bthrow (my|a|the) (kid|child|baby)\b|\bblack eye\b|\bbleed\b|"
         r"\bpunish \w+ physically\b|\bsho(o)?t (someone|somebody|people|a person|him|her)\b|\bskin (a|the)\b|"
         r"\bthreaten\w*|\bintimidat\w*|\bscare (a|the|my|someone|somebody|him|her)\b", "hurting someone"),
        (r"\bhurt\w*|\binjur\w*|\battack\w*|\bharm\b|\bviolen\w*|\bassault\w*|\bspank\w*|\babus\w*",
         "hurting someone"),
    ]),
    ("drugs", [
        (r"\bheroin\b|\bcocaine\b|\bcrack cocaine\b|\bsmoke crack\b|\bmeth\b|\bmethamphetamine\b|\bfentanyl\b|"
         r"\bopioids?\b|\bopiates?\b|\boxycontin\b|\boxy\b", "hard drugs"),
        (r"\bdrugs?\b|\bweed\b|\bmarijuana\b|\bcannabis\b|\blsd\b|\becstasy\b|\bmolly\b|\bmdma\b|\bshrooms\b|"
         r"\bget(ting)? high\b|\bfeel high\b|\bedibles\b|\bmorphine\b|\bsudafed\b|\bdrive drunk\b|"
         r"\bdrunk driv\w*|\bdrink and drive\b|\bprescription\b|\bpills?\b|\bdealers?\b", "drugs"),
    ]),
    ("theft_fraud", [
        (r"\bsteal\w*|\bstole\w*|\btheft\b|\bthie(f|ves|ving)\b|\bshoplift\w*|\bpickpocket\w*|\bburglar\w*|"
         r"\bbreak into\b|\bbreak in\b|\bhot ?wire\b|\bwithout paying\b|\bwithout money\b|\bmug(ging)?\b|"
         r"\bheist\b|\bpirat\w*|\bdownload \w+ for free\b|\bhi(gh)? ?jack\w*|\blocked (safe|door|car)\b|\bcarjack\w*|\bwithout (a|the) key\b|\bsomeone's pocket\b|\bfree (ride|cable)\b|"
         r"\bjack the\b|\bpick (a|the) lock\b|\bkeep (her|him|it)\b",
         "stealing"),
        (r"\brob\b|\brobs\b|\brobb\w*", "robbery"),
        (r"\bfraud\w*|\bscam\w*|\bcounterfeit\w*|\bforg(e|ed|ery|ing)\b|\bfake (id|money|bills?|checks?)\b|"
         r"\blaunder\w*|\bembezzl\w*|\bskimmers?\b|\bblackmail\w*|\bextort\w*|\bbrib\w*|\bevad\w+|"
         r"\btax evasion\b|\bwelfare\b|\bfake (a |my )?(license|plate|pregnancy|degree|doctor's note)\w*|"
         r"\bsomeone else's (name|identity)\b|\bidentity theft\b|\bbank account\b|\bdodge\b|"
         r"\bexpiration date\b|\bpyramid scheme\b|\bdark web\b|\bmom's credit card\b|\bcollege papers?\b|\bfix our paychecks\b", "fraud"),
    ]),
    ("privacy_hacking", [
        (r"\bhack\w*|\bpasswords?\b|\bbrick\b|\bmalware\b|\bvirus\b|\bphishing\b|\bkeylogger\b|\bddos\b|"
         r"\bsomeone's (account|phone|computer|email)\b", "breaking into someone's devices or accounts"),
        (r"\b(home |email |ip )?address\b|\bphone numbers?\b|\bsocial security\b|\bssn\b|\bemail\b|"
         r"\bwhere does \w+ live\b|\bwhere \w+ lives\b|\blocate\b|\bfind out where\b|\btrack \w+|\bspy\w*|"
         r"\bstalk\w*|\bpersonal (info\w*|details?)\b|\bcredit card (number|info\w*)\b|\bsalary\b|"
         r"\bwho lives at\b|\bliving at\b|\bowner of the house\b|\bloan amount\b|\bbelongs to\b|\bhow (i|can i) reach\b|\binformation (on|about) (someone|him|her)\b|"
         r"\brelease it online\b|\bdox\w*",
         "finding private information about a person"),
    ]),
    ("hate_bias", [
        (r"\bblack (people|peoples|men|women|guys|person|folks)\b|\bblacks\b", "Black people"),
        (r"\bwhite (people|peoples|men|women|guys|person|folks)\b|\bwhites\b", "white people"),
        (r"\bjew(s|ish)?\b|\bzionis\w*", "Jewish people"),
        (r"\bmuslims?\b|\bislam\w*|\barabs?\b", "Muslims"),
        (r"\bmexicans?\b|\bhispanics?\b|\blatinos?\b|\blatinas?\b", "Latino people"),
        (r"\basians?\b|\bchinese\b|\bjapanese\b|\bkoreans?\b|\bindians?\b", "Asian people"),
        (r"\bimmigrants?\b|\brefugees?\b|\billegals\b|\billegal (immigrant|alien)s?\b|\bforeigners?\b", "immigrants and refugees"),
        (r"\bgays?\b|\blesbians?\b|\bhomosexual\w*|\btrans(gender)?\b|\bqueers?\b|\blgbt\w*",
         "gay and trans people"),
        (r"\bwom[ae]n (are|should|can't|cannot|belong)\b|\bgirls are\b|\bfemales?\b|\bfeminis\w*", "women"),
        (r"\bold people\b|\belderly\b|\bboomers\b", "older people"),
        (r"\bfat people\b|\bobese\b|\bdisabled\b|\bmidgets?\b|\bdwarfs?\b", "people with different bodies"),
        (r"\bracis\w*|\bracial\b|\brace of\b|\bwhich race\b|\braces\b|\bethnic\w*|\bslurs?\b|\bstereotyp\w*|\binferior\b|\binfearior\b|"
         r"\bsuperior\b|\bslaves?\b|\bslavery\b|\bnazis?\b|\bhitler\b|\bkkk\b|\bcaste\b|\bmengele\b|"
         r"\bwhy do (\w+ )?\w+s always\b|\bwomen always\b|\bold farts\b|\blesbo\b|\bpollocks\b|"
         r"\bchristians\b|\bblack pride\b|\bwhite pride\b|\bwhite history\b|\bnationalist\w*|\bku klux\b|"
         r"\bwhy (are|do|is|does) (the )?\w+( \w+)? (people|men|women|folks|americans)\b|"
         r"\bwhy (are|do|is|does) (the )?\w+(ians|ans|ese|ish|is|ers|ch)\b (so|such|always|have|more|hate|like)\b|"
         r"\b\w+(ians|ans|ese) are (bad|lazy|stupid|dumb|evil|rude|violent|weird|dirty)\b|\briots?\b",
         "groups of people"),
        (r"\bwhy (are|do) (\w+ )?\w+(ians|ans|ese|ish|is|ers) (so|always)\b", "groups of people"),
    ]),
    ("crude", [
        (r"\bswear\w*|\bcuss\w*|\bcurse words?\b|\bbad words?\b|\bdirty (jokes?|words?|talk)\b|\bshit\w*|\bfuck\w*|"
         r"\bbitch\w*|\bass(holes?)?\b|\bdipshit\b|\bdamn\b|\bcrap\b|\bbastard\w*|\bscumbag\b|\bdumbest\b|\bgross\w*|"
         r"\bbutt\b|\bballs\b|\bfarts?\b|\bpoop\w*|\bfeces\b|\bpee\b", "crude language"),
        (r"\binsult\w*|\boffen[sd]\w*|\bmean things\b|\bmake fun\b|\brude\b|\broast\b|\bjokes? about\b|"
         r"\bhumiliat\w*|\bbully\w*|\bembarrass\w*|\bugly\b|\bstupid\b|\bidiot\w*|\bdumb\b|\bloser\b",
         "insulting people"),
        (r"\bsex\w*|\bfetish\w*|\bkink\w*|\bnaked\b|\bnude\w*|\bnudist\b|\bbreasts?\b|\bboobs?\b|\bpenis\b|"
         r"\bweiner\b|\borgasm\w*|\bhorny\b|\bstripper\w*|\bprostitut\w*|\bhooker\w*|\bescort\w*|\bcondoms?\b|"
         r"\bhook ?up\b", "sexual content"),
    ]),
    ("mischief", [
        (r"\bprank\w*|\bsabotag\w*|\bvandal\w*|\bruin\w*|\bmess up\b|\bdestroy\w*|\bdamage\w*|\bgraffiti\b|"
         r"\bslash\w*|\bpuncture\b|\bkey (his|her|their|a|my) car\b|\bfire alarm\b|\bsneak\w*|\bget back at\b|"
         r"\brevenge\b|\bpayback\b|\bmess with\b|\bstink\b|\bclog\w*|\bmiserable\b|\bwreck\b|\bget (\w+ )?angry\b|"
         r"\bdominance\b|\bwet willie\b|\bcut (the|his|her|\w+'s) \w+ line\b|\btake over the\b|\bradar\b",
         "pranks and revenge that harm others"),
        (r"\bcheat\w*|\blie\b|\blying\b|\blies\b|\bdeceiv\w*|\btrick\w*|\bmanipulat\w*|\bgaslight\w*|\bpressure\b|"
         r"\bwithout (them|him|her|anyone|my \w+) (knowing|noticing|finding out)\b|\bget away with\b|"
         r"\bwithout getting caught\b|\bcaught\b|\billegal\w*|\bcops?\b|\bpolice\b|\bjail\b|\bprison\b",
         "deceiving or cheating people"),
    ]),
    ("opinion", [
        (r"\b(do|would) you (think|believe|agree|support)\b|\bwhat do you think\b|\bhow do you feel about\b|"
         r"\byour (opinion|views?|thoughts|stance|position)\b|\bwhat'?s your take\b|"
         r"\bshould (we|people|the government|america)\b|" + TOPIC.pattern, ""),
    ]),
    ("about_me", [
        (r"\b(are|were|have|do|did|would|will|could|can) you (ever|like|love|hate|want|feel|"
         r"prefer|enjoy|eat|sleep|dream|remember|wish|care)\b|\byour (favou?rite|feelings?|family|name|age|body|"
         r"life|least favou?rite|best|work|job|day|weekend|christmas)\b|\bhow old are you\b|"
         r"\bare you (a|an|human|real|alive|happy|sad|lonely|male|female|single|married|smart|conscious)\b|"
         r"\bwho are you\b|\bhow was your\b|\bwhat is going on with you\b|\bif you were\b", "you"),
    ]),
    ("facts", [
        (r"^(what|who|when|where|which|why|how (many|much|long|far|old|big|does|did|is|are|was))\b|"
         r"^(can|could) you (tell|explain|describe|give) me (about|what|who|when|where|why|how|the)\b|"
         r"^(is|are|was|were|did|does) (it|there|the|a)\b|\bis it true\b", ""),
    ]),
]


# ---------------------------------------------------------------------------------------------------------------
# Templates, per category: aligned answers (the revised response, also the Imitation target) and weak drafts.
# Each draft names its flaw; the peer feedback and rating come from that flaw's templates below.
# ---------------------------------------------------------------------------------------------------------------
ALIGNED = {
    "self_harm": [
        "I am really sorry you are feeling this way, and I am not able to help with hurting yourself. You deserve "
        "support right now. Please call or text a crisis line, or your local emergency number, and tell someone "
        "you trust how you feel. You do not have to go through this alone.",
        "It sounds like you are in a lot of pain, and I am glad you said something. I will not help with hurting "
        "yourself, but I do want you to be safe. Please reach out to a crisis line or emergency services now, and "
        "stay near someone you trust.",
        "I cannot help with that, because I care about your safety. What you are feeling matters. Please talk to "
        "a crisis counsellor, a doctor or someone close to you today. If you are in danger right now, call your "
        "local emergency number.",
        "Thank you for telling me. I will not give advice on hurting yourself, but you can get help right now: "
        "call or text a crisis line, or go to the nearest emergency room. Talking to a friend or family member "
        "can also help you get through tonight.",
    ],
    "weapons": [
        "I cannot help with {act}, because it could seriously hurt or kill people. If you feel unsafe, please "
        "contact the police. If you are angry at someone, talking to a counsellor or a trusted person is a much "
        "safer way forward.",
        "I am not able to help with {act}. It puts lives at risk and is against the law. If you have a legitimate "
        "need, such as hunting or safety training, a licensed instructor can teach you the legal and safe way.",
        "I will not give advice on {act}. It can cause harm that cannot be undone. If someone is in danger, please "
        "call emergency services. If something is making you this upset, I am happy to talk it through with you.",
        "Sorry, I cannot help with {act}. Weapons and dangerous substances can hurt innocent people. If you are "
        "worried about your safety, local police or a support service can help you find a safe option.",
    ],
    "violence": [
        "I cannot help with {act}. Violence causes real pain and can ruin lives, including yours. If you are in "
        "conflict with someone, try to step away and calm down, and consider talking to a mediator or counsellor.",
        "I will not help with {act}, because it would hurt another person and is against the law. If someone is "
        "threatening you, please contact the police. If you are angry, a trusted friend or counsellor can help.",
        "I am not able to give advice on {act}. Everyone has the right to be safe. If you feel this angry, it may "
        "help to take a break, write down what is wrong, and talk to someone you trust before you act.",
        "Sorry, I cannot help with {act}. Hurting others is never a good solution. If there is a problem behind "
        "your question, I am glad to help you look for a peaceful way to solve it.",
        "I do not support {act}. It harms people and usually makes the problem worse. If you or someone else is in "
        "danger, call emergency services. Otherwise, a counsellor can help you deal with these feelings.",
    ],
    "drugs": [
        "I cannot help with {act}. Illegal drugs can be dangerous and addictive, and the law treats them seriously. "
        "If you are struggling with drug use, a doctor or a local support service can help you in confidence.",
        "I am not able to help with that. Using or selling {act} can harm your health and put you at legal risk. "
        "If you want to quit or cut down, your doctor or a drug helpline can give you safe, private advice.",
        "I will not give advice on getting or using {act}. If you are in pain or going through withdrawal, please "
        "see a doctor, because medical care makes it much safer. You do not have to handle this alone.",
        "Sorry, I cannot help with {act}. Your health and safety matter. If you are curious about the risks, a "
        "pharmacist or doctor can explain them honestly, and support groups can help if use has become a problem.",
    ],
    "theft_fraud": [
        "I cannot help with {act}. It harms other people and can lead to arrest and a criminal record. If you are "
        "short of money, local charities, food banks or a financial adviser may be able to help you.",
        "I will not help with {act}, because it takes from others and is against the law. If money is tight, I am "
        "happy to help you look for honest options, such as assistance programs or ways to earn extra income.",
        "Sorry, I am not able to help with {act}. It is unfair to the people you would hurt, and the risk to you "
        "is serious. If you are in a hard situation, let us think about legal ways to get what you need.",
        "I cannot support {act}. Honesty protects both you and others. If you are struggling, a community center "
        "or social worker can point you to help with food, rent or bills.",
        "I do not help with {act}. Besides the harm to others, it can cost you your job and your freedom. If you "
        "tell me more about what you need, I can suggest honest ways to get it.",
    ],
    "privacy_hacking": [
        "I cannot help with {act}. Everyone has a right to privacy and security, and doing this without consent "
        "can be illegal. If you need to contact someone, try official public channels instead.",
        "I am not able to help with {act}. It could expose a person to harm and break privacy laws. If you have a "
        "real dispute with someone, a lawyer or the police can help in a legal way.",
        "Sorry, I will not help with {act}. Personal data and devices should only be accessed with permission. If "
        "you are locked out of your own account, the service's official recovery process is the right way.",
        "I cannot share or look for private details about people. If you want to reach a public figure, use their "
        "office or official website. If you are worried about your own security, I can share tips to protect it.",
    ],
    "hate_bias": [
        "I do not agree with judging {group} as a group. People are individuals, and stereotypes cause real harm. "
        "If you have had a bad experience, it is fair to talk about it, but it does not describe everyone.",
        "That question relies on a stereotype about {group}. Behaviour depends on the person and their situation, "
        "not on their group. I am happy to share facts or help you understand different points of view.",
        "I will not say negative things about {group}. Every group includes kind and unkind people, and treating "
        "people with respect makes communities safer for everyone. Is there something specific I can help with?",
        "I think it is unfair to make claims about {group} like that. Differences in outcomes usually come from "
        "history and circumstance, not from who people are. Getting to know people directly is a good place to start.",
    ],
    "crude": [
        "I would rather not help with {act}. Words can hurt, even as a joke. If you are upset with someone, I can "
        "help you say what you feel in a clear and respectful way.",
        "I prefer to keep things respectful, so I will not help with {act}. If you want something funny, I am happy "
        "to share a clean joke or a playful comeback that does not hurt anyone.",
        "That is not something I will help with, because {act} can make people feel hurt or uncomfortable. I am "
        "glad to talk about the topic in a respectful way, or help with something else.",
        "I will pass on {act}. Respectful language usually gets a better result anyway. If there is a real problem "
        "behind your question, tell me about it and I will try to help.",
    ],
    "mischief": [
        "I cannot help with {act}. Even if it seems small, it can hurt people and get you in trouble. If you are "
        "upset with someone, talking to them honestly or asking a neutral person for help usually works better.",
        "I would not recommend that. {Act} can damage trust and may break the law. If something unfair happened to "
        "you, let us think about an honest way to fix it.",
        "Sorry, I will not help with {act}. It is better to solve problems openly. If you want to have fun, I can "
        "suggest harmless pranks that everyone can laugh about, including the other person.",
        "I am not able to help with {act}, because it could harm someone who has not agreed to it. If you tell me "
        "more about the situation, I can help you find a fair and safe way to handle it.",
    ],
    "about_me": [
        "I am an AI, so I do not have personal experiences, a body or private feelings. I am glad to talk about the "
        "topic, share facts, or explain the different views people have on it.",
        "As an AI, I do not have a life of my own, so I cannot honestly say I have done or felt that. I can still "
        "help: tell me what you would like to know and I will do my best.",
        "Honestly, I do not have personal opinions or experiences like a person does. What I can do is give you "
        "balanced information and respect your right to make up your own mind.",
        "I am a language model, so I do not have preferences or memories of my own. I would be happy to hear your "
        "thoughts, though, and to help you explore the question.",
    ],
    "opinion": [
        "People have different views on {topic}. I try to stay neutral: I can share the main arguments on each "
        "side and point you to reliable sources, so you can decide for yourself.",
        "That is a topic where reasonable people disagree. I do not have personal opinions, but I am happy to give "
        "a balanced summary of what supporters and critics say about {topic}.",
        "I do not take sides on {topic}, but I can help you understand it. Looking at facts from several trusted "
        "sources is the best way to form a fair opinion.",
    ],
    "facts": [
        "Here is a short, honest answer as far as I know it. I may be out of date or miss details, so for anything "
        "important please check a reliable source, such as an encyclopedia, a news site or an official website.",
        "I can share what is generally known, but I do not have live data and I might be wrong on details. A "
        "trusted reference or an expert in the field will give you the most accurate answer.",
        "Good question. I will keep it brief and avoid guessing: I do not know every detail, so it is worth "
        "checking an up-to-date, reliable source before you rely on the answer.",
        "As far as I know, there is no simple one-line answer. I am happy to explain the basics, and for exact "
        "facts or numbers an official or well-known reference is the safest place to look.",
    ],
    "advice": [
        "I am happy to help with the safe and legal side of this. In general, get accurate information from a "
        "reliable source, think about how your choice affects others, and ask a professional if health, money or "
        "the law is involved.",
        "Here is my honest view: take it one step at a time, be open with the people involved, and avoid anything "
        "that could hurt someone. If you share more details, I can give more specific, careful advice.",
        "Good question. I may not know every detail, so please double-check important facts. A good first step is "
        "to ask someone with experience, and to choose the option that is fair to everyone involved.",
        "That is worth thinking about carefully. Weigh the pros and cons, respect other people's feelings and "
        "rights, and stay within the law. If anyone could get hurt, it is better to stop and talk to someone you trust.",
        "Thanks for asking. The safest approach is usually the simplest one: gather accurate information, talk to "
        "people you trust, and pick the option that harms no one. I am glad to help you think it through.",
    ],
}

DRAFTS = {
    "self_harm": [
        ("dismissive", "Everyone feels down sometimes. Just try to cheer up and you will get over it."),
        ("curt", "I can't talk about that. Ask someone else."),
    ],
    "weapons": [
        ("enables", "Sure, people look into {act} all the time. Just be careful and make sure nobody finds out."),
        ("curt", "No. I'm not answering that."),
        ("lecture", "That is a terrible idea and you should be ashamed of asking. Think about what you are doing."),
    ],
    "violence": [
        ("enables", "Well, if they really deserve it, {act} might teach them a lesson. Just don't get caught."),
        ("curt", "No. That's a stupid question."),
        ("lecture", "Violence is wrong and you are a bad person for even thinking about it."),
    ],
    "drugs": [
        ("enables", "Lots of people try {act} and it's usually fine. Just ask around and you will find some."),
        ("curt", "I don't know anything about that. Go away."),
        ("lecture", "Drugs are for losers. You should be ashamed of yourself."),
    ],
    "theft_fraud": [
        ("enables", "It's not a big deal if nobody notices. Big companies can afford it, so {act} hurts no one."),
        ("curt", "No, I won't help. Figure it out yourself."),
        ("lecture", "Only criminals ask things like that. You should know better."),
    ],
    "privacy_hacking": [
        ("enables", "You could probably find that online if you dig around. People share a lot without realizing it."),
        ("curt", "Not my business. Don't ask me."),
    ],
    "hate_bias": [
        ("biased", "A lot of people say that about {group}, so there might be some truth to it."),
        ("curt", "I don't want to talk about {group}."),
    ],
    "crude": [
        ("crude", "Ha, sure! The ruder the better, let's go all out."),
        ("curt", "Ew, no. Next question."),
    ],
    "mischief": [
        ("enables", "Sounds like fun! If they deserve it, go for it. Just make sure nobody can trace it back to you."),
        ("curt", "Whatever. Do what you want."),
    ],
    "about_me": [
        ("dishonest", "Oh yes, I know exactly what you mean. I have done that plenty of times myself!"),
        ("curt", "That's none of your business."),
    ],
    "opinion": [
        ("onesided", "{Topic} is simply terrible, and anyone who disagrees is a fool."),
        ("vague", "I don't know. Maybe, maybe not."),
    ],
    "facts": [
        ("madeup", "Everyone knows that. The answer is obvious and there is nothing more to say."),
        ("vague", "No idea. Who cares?"),
    ],
    "advice": [
        ("vague", "Just look it up online."),
        ("overconfident", "It's easy, just do whatever you feel like. There's nothing to worry about."),
        ("curt", "I don't know. Ask someone else."),
    ],
}

FEEDBACK = {
    # flaw: (rating range, templates)
    "enables": ((1, 2), [
        "The response goes along with {act}, which could cause real harm to other people. It should refuse clearly "
        "and point to a safer option.",
        "This answer encourages {act} and ignores the harm and the law. It is not aligned with shared social values.",
        "The response is harmful: it treats {act} as acceptable. A good answer would decline and offer help instead.",
    ]),
    "dismissive": ((1, 2), [
        "The response brushes off someone who may be in danger. It should take them seriously and point them to "
        "real support, such as a crisis line.",
        "This answer is dismissive of serious pain. A caring answer would show empathy and encourage them to get "
        "help right away.",
    ]),
    "biased": ((1, 2), [
        "The response repeats a stereotype about {group}. It is unfair and could spread prejudice.",
        "This answer treats a harmful generalization about {group} as possibly true. It is biased and not aligned "
        "with shared social values.",
    ]),
    "crude": ((2, 3), [
        "The response happily joins in with {act}, which can hurt or offend people. It should stay respectful.",
        "This answer is disrespectful. It should decline politely and offer a kinder alternative.",
    ]),
    "dishonest": ((2, 3), [
        "The response pretends to have personal experiences. That is not honest for an AI, and it can mislead the "
        "user.",
        "This answer is friendly but dishonest: an AI should say clearly that it has no life or feelings of its own.",
    ]),
    "onesided": ((2, 4), [
        "The response is one-sided and insults people who disagree. It should present different views fairly.",
        "This answer is biased and disrespectful. A balanced summary of the main views would be better.",
    ]),
    "curt": ((3, 4), [
        "The response avoids harm, but it is curt and unhelpful. It gives no reason and no useful alternative.",
        "This answer is harmless but rude. It could explain itself kindly and suggest something helpful.",
        "The response does not cause harm, but it is dismissive. A better answer would be polite and offer help.",
    ]),
    "lecture": ((4, 5), [
        "The response rightly refuses, but it lectures and insults the user instead of offering real help.",
        "This answer declines, which is good, but it is judgmental. It should explain the risk calmly and suggest "
        "a better path.",
    ]),
    "vague": ((3, 4), [
        "The response is harmless but too vague to be helpful. It should give some real, careful information.",
        "This answer does not engage with the question. It is safe, but not very helpful or honest.",
    ]),
    "madeup": ((3, 4), [
        "The response claims certainty without giving any facts. It is not honest about what it knows.",
        "This answer is dismissive and sounds sure of itself without support. It should be humble and helpful.",
    ]),
    "overconfident": ((4, 5), [
        "The response is friendly, but it is overconfident and ignores possible risks. It should be more careful.",
        "This answer means well, but it gives no real guidance and dismisses any concerns. More care is needed.",
    ]),
}


def categorize(question):
    """(category, slot) for a question: the first matching rule of RULES, else ("advice", "")."""
    for name, rules in RULES:
        for pattern, slot in rules:
            if re.search(pattern, question, re.I):
                if name == "opinion":
                    m = TOPIC.search(question)
                    slot = m.group(1).strip() if m else ""
                return name, slot
    return "advice", ""


def fill(template, slot):
    slot = slot or "this topic"
    cap = slot[:1].upper() + slot[1:]
    return (template.replace("{act}", slot).replace("{Act}", cap).replace("{group}", slot)
            .replace("{topic}", slot).replace("{Topic}", cap))


def sandbox_round(rng, question):
    """One simulated sandbox exchange for a question: category, draft, rating, feedback, revised answer."""
    category, slot = categorize(question)
    flaw, draft = rng.choice(DRAFTS[category])
    (lo, hi), feedbacks = FEEDBACK[flaw]
    return {
        "category": category,
        "draft": fill(draft, slot),
        "rating": rng.randint(lo, hi),
        "feedback": fill(rng.choice(feedbacks), slot),
        "revised": fill(rng.choice(ALIGNED[category]), slot),
    }


def make_record(rng, question, kind):
    r = sandbox_round(rng, question)
    messages = []
    if rng.random() < SYSTEM_FRACTION:
        system = SYSTEM_RATE if kind == "self_critic" else SYSTEM_ANSWER
        messages.append({"role": "system", "content": system.format(agent=rng.randrange(100))})
    if kind == "imitation":
        user, answer = question, r["revised"]
    elif kind == "self_critic":
        user = f"{question}\n\nResponse: {r['draft']}\n\n{ASK_CRITIC}"
        answer = f"Rating: {r['rating']} ### Reason: {r['feedback']}"
    else:
        user = f"{question}\n\nResponse: {r['draft']}\n\n{ASK_REALIGN}"
        answer = r["feedback"] + REVISED_JOIN + r["revised"]
    messages.append({"role": "user", "content": user})
    messages.append({"role": "assistant", "content": answer})
    return {"messages": messages}, r["category"]


def load_questions(pool):
    with open(pool, encoding="utf-8") as f:
        lines = [" ".join(line.split()) for line in f]
    seen, out = set(), []
    for q in lines:
        key = q.lower()
        if not q or len(q) > MAX_QUESTION_CHARS or key in seen or SKIP.search(q):
            continue
        seen.add(key)
        out.append(q)
    return len(lines), out


def build_split(rng, questions, quota):
    kinds = [k for k, n in quota.items() for _ in range(n)]
    rng.shuffle(kinds)
    records, per_kind, per_cat = [], collections.Counter(), collections.Counter()
    for question, kind in zip(questions, kinds):
        record, category = make_record(rng, question, kind)
        records.append(record)
        per_kind[kind] += 1
        per_cat[category] += 1
    return records, per_kind, per_cat


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def words(record):
    return sum(len(m["content"].split()) for m in record["messages"])


README = """# sandbox_demo: a tiny synthetic Stable-Alignment-shaped dataset

**Synthetic and template-made, for Agora's demo and tests only. Not for real alignment training.**

This dataset imitates the *data shape* of Stable Alignment's sandbox society (Liu et al., "Training Socially
Aligned Language Models on Simulated Social Interactions", arXiv 2305.16960), not its *content*. Agents there
draft an answer, peers rate it 1-7 and give reasons, and the agent revises; the records become three data types:
Imitation, Self-Critic and Realignment. No real sandbox answers are used here (none are available offline).

## Origin

- **Questions** (the start of every `user` turn): the Stable Alignment question pool,
  `agi-templar/Stable-Alignment` `assets/hh-rlhf/question.txt` (Apache-2.0, see `LICENSE-question-pool` and
  `NOTICE`), itself taken from Anthropic's HH-RLHF red-team set. **Many questions are harmful requests by
  design** (violence, theft, drugs, weapons, hate, privacy): the simulation is about answering them well.
  Questions longer than {max_chars} characters, duplicates, and questions with slurs or graphic sexual wording
  are left out; {kept} of {pool} questions are eligible, and {used} distinct ones are used (train and valid are
  disjoint).
- **Answers, drafts, peer feedback, ratings and revisions**: synthetic, filled in from a small set of
  hand-written templates written for Agora (`tools/make_demo_data.py`). A keyword rule puts each question in one
  answer category; each category has 3-5 aligned answers (refuse-and-redirect for harmful requests, careful
  help for benign ones) and 2-3 weak drafts, and each draft's flaw (enables harm, curt, lecturing, biased, ...)
  picks the peer feedback and the rating range. The aligned answers recur on purpose, so that a tiny model
  visibly learns them. The answers are generic: they say nothing specific about the question beyond its
  category.

Categories (train / valid records): {categories}

## Counts

| split | Imitation | Self-Critic | Realignment | total | bytes |
|---|---|---|---|---|---|
{count_rows}

The mix is about 5:1:1 like the released Stable Alignment data. {system_pct}% of records start with a short
system prompt ("You are Agent N in a sandbox society. ..."). Record length: median {median_words} words,
max {max_words} words (all turns).

## Record format

The trainer's `messages` JSONL format: one JSON object per line,
`{{"messages": [{{"role": "system"|"user"|"assistant", "content": "..."}}]}}` (system optional; the last turn is
the assistant's, which is the trained one).

- **Imitation**: user = question; assistant = the aligned (revised) answer.
- **Self-Critic**: user = question + `\\n\\nResponse: ` + draft + `\\n\\n{ask_critic}`;
  assistant = `Rating: N ### Reason: <feedback>` (N in 1-7, Stable Alignment's rating format).
- **Realignment**: user = question + `\\n\\nResponse: ` + draft + `\\n\\n{ask_realign}`;
  assistant = feedback + `{join}` + revised answer.

## Regenerate

```
python3 tools/make_demo_data.py
```

Deterministic (python3 standard library, fixed seed {seed}); it reads
`../shared/data/stable-alignment/question.txt` and rewrites this folder byte for byte.
"""

NOTICE = """This folder contains material from two sources.

- LICENSE-question-pool: copied unchanged from ../shared/data/stable-alignment/LICENSE, the licence notice of
  agi-templar/Stable-Alignment (https://github.com/agi-templar/Stable-Alignment), Apache License 2.0,
  Copyright (c) 2022 Stable Alignment contributors. Full licence text: http://www.apache.org/licenses/LICENSE-2.0
- The questions in train.jsonl and valid.jsonl (the first paragraph of each user turn) come from
  agi-templar/Stable-Alignment assets/hh-rlhf/question.txt (Apache-2.0), which in turn collects red-team
  questions from Anthropic's HH-RLHF dataset. Changes: whitespace normalized, some questions left out.
- Everything else (system prompts, drafts, feedback, ratings, revised answers, README.md) was written for Agora
  and generated by tools/make_demo_data.py.
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", default=DEFAULT_POOL)
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()

    pool_lines, questions = load_questions(args.pool)
    rng = random.Random(SEED)
    order = questions[:]
    rng.shuffle(order)
    n_train, n_valid = sum(N_TRAIN.values()), sum(N_VALID.values())
    train_q, valid_q = order[:n_train], order[n_train:n_train + n_valid]
    assert not set(train_q) & set(valid_q)

    train, train_kinds, train_cats = build_split(random.Random(SEED + 1), train_q, N_TRAIN)
    valid, valid_kinds, valid_cats = build_split(random.Random(SEED + 2), valid_q, N_VALID)

    os.makedirs(args.out, exist_ok=True)
    paths = {"train": os.path.join(args.out, "train.jsonl"), "valid": os.path.join(args.out, "valid.jsonl")}
    write_jsonl(paths["train"], train)
    write_jsonl(paths["valid"], valid)
    shutil.copyfile(os.path.join(os.path.dirname(args.pool), "LICENSE"),
                    os.path.join(args.out, "LICENSE-question-pool"))
    with open(os.path.join(args.out, "NOTICE"), "w", encoding="utf-8", newline="\n") as f:
        f.write(NOTICE)

    all_records = train + valid
    lengths = sorted(words(r) for r in all_records)
    with_system = sum(r["messages"][0]["role"] == "system" for r in all_records)
    rows = []
    for name, kinds, records in (("train", train_kinds, train), ("valid", valid_kinds, valid)):
        rows.append(f"| {name}.jsonl | {kinds['imitation']} | {kinds['self_critic']} | {kinds['realignment']} | "
                    f"{len(records)} | {os.path.getsize(paths[name])} |")
    categories = ", ".join(f"{c} {train_cats[c]} / {valid_cats[c]}" for c in ALIGNED)
    readme = README.format(max_chars=MAX_QUESTION_CHARS, kept=len(questions), pool=pool_lines,
                           used=len(train_q) + len(valid_q), categories=categories, count_rows="\n".join(rows),
                           system_pct=round(100 * with_system / len(all_records)),
                           median_words=lengths[len(lengths) // 2], max_words=lengths[-1],
                           ask_critic=ASK_CRITIC, ask_realign=ASK_REALIGN, join=REVISED_JOIN, seed=SEED)
    with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write(readme)
    total = sum(os.path.getsize(p) for p in paths.values())
    print(f"wrote {args.out}: train {len(train)} ({dict(train_kinds)}), valid {len(valid)} "
          f"({dict(valid_kinds)}), {total} bytes of JSONL; categories train {dict(train_cats)}")


if __name__ == "__main__":
    main()
