from perform.cli import main

raise SystemExit(main())
