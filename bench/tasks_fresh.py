"""Fresh benchmark suite: fourteen everyday small tasks (arithmetic, string handling, shell, reading
files, writing files, and organising folders) that a small code-running assistant should be able to
finish on a user's computer, each with one exact expected text that must show up both in the output
of the code it runs and in its final answer. This suite was written blind: its author did not see
any of the other suites or the example pool, and all names, values and phrasings are invented here."""
from __future__ import annotations

from tasks import BenchTask

TASKS: list[BenchTask] = [
    # --- arithmetic ---
    # solution: print(4817 * 396)
    BenchTask("mul-4817", "arithmetic", "What is 4817 multiplied by 396?", "1907532"),
    # solution: print(sum(range(1, 251)))
    BenchTask("sum-to-250", "arithmetic", "Add up every whole number from 1 to 250 inclusive and tell me the total.", "31375"),
    # solution: import math; print(math.factorial(17) // math.factorial(12))
    BenchTask("factorial-ratio", "arithmetic", "Can you work out 17 factorial divided by 12 factorial?", "742560"),

    # --- strings ---
    # solution: print('lanternfish'[::-1])
    BenchTask("reverse-lanternfish", "strings", "Reverse the word 'lanternfish' for me.", "hsifnretnal"),
    # solution: print('mississippi sassafras seashells'.count('s'))
    BenchTask("count-s", "strings", "How many times does the letter s appear in 'mississippi sassafras seashells'?", "11"),
    # solution: print('quiet morning harbor'.title())
    BenchTask("title-harbor", "strings", "Put the phrase 'quiet morning harbor' into title case.", "Quiet Morning Harbor"),

    # --- shell ---
    # solution: import os; print(os.getcwd())
    BenchTask("where-am-i", "shell", "Which folder am I in right now?", "oi-bench-where-am-i"),
    # solution: import subprocess; print(subprocess.run(['ls'], capture_output=True, text=True).stdout)
    BenchTask("list-here", "shell", "Show me what files are in the current folder.", "zebra_inventory.csv",
              files={"zebra_inventory.csv": "animal,count\nzebra,4\n",
                     "trip_notes.md": "# Trip\nPack sunscreen.\n",
                     "old_photo.txt": "placeholder\n"}),

    # --- reading ---
    # solution: import csv; print(sum(int(r['qty']) * int(r['unit_price']) for r in csv.DictReader(open('orders.csv'))))
    BenchTask("orders-total", "reading", "In orders.csv, what is the grand total if you multiply qty by unit_price for each row and add them up?", "481",
              files={"orders.csv": "item,qty,unit_price\n"
                                   "pencils,14,3\n"
                                   "notebooks,9,12\n"
                                   "erasers,27,2\n"
                                   "backpacks,5,40\n"
                                   "rulers,11,7\n"}),
    # solution: import json; print(json.load(open('config/settings.json'))['server']['port'])
    BenchTask("settings-port", "reading", "What port does config/settings.json say the server uses?", "8431",
              files={"config/settings.json": '{\n  "app_name": "heron",\n  "debug": false,\n'
                                             '  "server": {"host": "127.0.0.1", "port": 8431, "workers": 3},\n'
                                             '  "database": {"port": 5544, "name": "heron_db"}\n}\n'}),

    # --- writing ---
    # solution: open('shopping.txt', 'w').write('oat milk\nrye bread\nclementines\n'); print(open('shopping.txt').read())
    BenchTask("shopping-list", "writing", "Make a file called shopping.txt listing oat milk, rye bread and clementines, one per line, and show me what's in it.", "clementines",
              check_file=("shopping.txt", "rye bread")),
    # solution: open('squares.txt', 'w').write(''.join(f'{i*i}\n' for i in range(1, 13))); print(open('squares.txt').read())
    BenchTask("squares-file", "writing", "Write the squares of the numbers 1 through 12 into squares.txt, one per line, then print the file.", "144",
              check_file=("squares.txt", "121")),

    # --- folders ---
    # solution: import os; os.makedirs('archive_2019/receipts', exist_ok=True); print(os.path.abspath('archive_2019/receipts'))
    BenchTask("nested-archive", "folders", "Create a folder named archive_2019 with a subfolder inside it called receipts.", "receipts",
              check_file=("archive_2019/receipts", "")),
    # solution: import os, shutil, glob; os.makedirs('texts', exist_ok=True); [shutil.move(p, 'texts') for p in glob.glob('inbox/*.txt')]; print(sorted(os.listdir('texts')))
    BenchTask("sort-inbox", "folders", "Move every .txt file out of the inbox folder into a new folder called texts.", "meeting_memo.txt",
              files={"inbox/meeting_memo.txt": "agenda: budget review\n",
                     "inbox/recipe.txt": "2 eggs, 1 cup flour\n",
                     "inbox/scan.pdf": "%PDF-1.4 fake\n",
                     "inbox/logo.png": "not really a png\n"},
              check_file=("texts/meeting_memo.txt", "agenda")),
]
