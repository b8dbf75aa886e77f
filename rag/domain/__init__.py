"""What the project knows about particular kinds of documents, apart from the generic machinery that uses it.

- `contracts`: the words contracts write for a question's plain ones (keyword search), the questions about a
  contract itself that its opening answers (quote answers), the lines that open a numbered clause (sentences).
- `filings`: a filing's financial statements: their titles, and what in a question asks for each.
- `clause_models` (+ `clause_models.npz`): CUAD's 41 clause types as linear models over sentence vectors;
  `clause_training` fits them.
- `quote_weights.json`: the weights and thresholds of quote answers (rag.quotes), fitted on cuad-dev.

Each table says where it came from and what it was measured to change, and has a setting that switches it
off (`contract_words`, `document_questions`, `clause_openings`, `statements`, `clause_models=none`), so that
its effect can be measured on any corpus (`rag eval` with the setting off, beside a run with it on).
"""
