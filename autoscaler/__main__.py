from autoscaler.cli.main import main

raise SystemExit(main())
