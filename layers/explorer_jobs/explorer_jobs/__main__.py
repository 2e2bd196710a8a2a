import sys

from explorer_jobs.cli import main

sys.exit(main())
