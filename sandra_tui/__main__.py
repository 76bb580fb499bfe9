from sandra_tui.cli import main

raise SystemExit(main())
