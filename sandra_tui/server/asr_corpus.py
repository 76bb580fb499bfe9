"""The sentences the local agent's language model is built from (asr.py).

PocketSphinx's general English model (a 27 MB LM over 130,000 words) gets most of espeak-ng's
synthetic speech wrong and takes seconds to load with the full dictionary; a small model of
what a caller says to a booking assistant recognises it well in 25 ms of start-up. Words
outside these sentences cannot be recognised: the offline stand-in is honest about that.
"""

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

SENTENCES = """
hello
hello sandra
hi
hi sandra
hi there
hey sandra
hey there
good morning
good morning sandra
good afternoon
good evening
hello how are you
how are you today
i am fine thank you
nice to meet you
what time is it
what time is it now
what is the time
what is the time now
tell me the time
tell me the time please
can you tell me the time
do you know what time it is
what is the date
what is the date today
what is today's date
what day is it
what day is it today
what day of the week is it
tell me the date please
who are you
what are you
what is your name
are you a robot
are you a real person
are you sandra
who am i talking to
help
help me
help me please
i need help
can you help me
what can you do
what can i say
how does this work
how do i use this
check booking
check my booking
check booking number
please check my booking
can you check my booking
can you check booking number
i want to check my booking
repeat after me
repeat after me hello world
repeat after me the weather is nice today
repeat after me i would like a table for two
repeat after me the quick brown fox jumps over the lazy dog
repeat after me this is a test
repeat after me good night and good luck
say hello
say something
thank you
thanks
thank you very much
thanks a lot
goodbye
bye
bye bye
see you later
have a nice day
you too
can you hear me
can you hear me now
i can hear you
i can not hear you
please speak louder
please speak slowly
say that again
sorry
excuse me
yes
yes please
no
no thank you
okay
all right
that is right
that is wrong
i would like to book a room
i would like to book a table
i would like a table for two
i would like to make a reservation
cancel my reservation
cancel my booking
i want to change my booking
i want to change the date
is my room ready
where is my order
how much does it cost
what is the price
when does it open
when does it close
is the hotel open today
i will arrive tomorrow
i will arrive late tonight
for two people
for one night
for three nights
next week
next monday
on friday
this weekend
tomorrow morning
in the evening
please call me back
i have a question
the weather is nice today
it is raining today
i like green apples
my name is john
my name is maria
my phone number is
the quick brown fox jumps over the lazy dog
this is a test
testing one two three
one two three four five
""".strip().splitlines()


def booking_sentences() -> list[str]:
    """'check booking' with four digits, covering every pair of digits once (a de Bruijn
    sequence cut into overlapping groups), so no booking number is less likely than another."""
    a = [0] * 20
    seq: list[int] = []

    def db(t: int, p: int) -> None:  # the standard de Bruijn construction, k=10, n=2
        if t > 2:
            if 2 % p == 0:
                seq.extend(a[1 : p + 1])
        else:
            a[t] = a[t - p]
            db(t + 1, p)
            for j in range(a[t - p] + 1, 10):
                a[t] = j
                db(t + 1, t)

    db(1, 1)
    seq += seq[:3]
    groups = [seq[i : i + 4] for i in range(0, len(seq) - 3, 3)]
    return ["check booking " + " ".join(DIGITS[d] for d in g) for g in groups]


def corpus() -> list[str]:
    return SENTENCES + booking_sentences() + [" ".join(DIGITS)]
