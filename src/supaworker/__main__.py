from supaworker.cli import main

main()
