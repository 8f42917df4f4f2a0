from gridedge.cli import main

raise SystemExit(main())
