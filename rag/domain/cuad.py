"""CUAD's 41 clause types: what a legal team looks for in every contract (The Atticus Project, CC BY 4.0).

Each has the question cuad-dev and cuad-train ask about it (../shared/data), and what a reviewer wants back: the
clause itself, or for a few a short value taken from it (a name, a date, a state, a period).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    name: str  # as CUAD spells it ("Governing Law", "Rofr/Rofo/Rofn")
    question: str  # CUAD's question, as the data sets ask it

    @property
    def key(self) -> str:
        """The name as a column or option: lower case, words joined by '-' ("governing-law", "rofr-rofo-rofn")."""
        return "-".join("".join(ch if ch.isalnum() else " " for ch in self.name.lower()).split())


CATEGORIES: tuple[Category, ...] = (
    Category('Document Name',
             'What is the name of this contract?'),
    Category('Parties',
             'Who are the parties to this contract?'),
    Category('Agreement Date',
             'What is the date of this contract?'),
    Category('Effective Date',
             'When does this contract become effective?'),
    Category('Expiration Date',
             "On what date will the contract's initial term expire?"),
    Category('Renewal Term',
             'What is the renewal term after the initial term expires?'),
    Category('Notice Period To Terminate Renewal',
             'What is the notice period required to terminate renewal?'),
    Category('Governing Law',
             "Which state/country's law governs the interpretation of the contract?"),
    Category('Most Favored Nation',
             'Is there a clause that if a third party gets better terms on the licensing or sale of technology/goods/services described in the contract, the buyer of such technology/goods/services under the contract shall be entitled to those better terms?'),
    Category('Competitive Restriction Exception',
             'Does this contract contain a clause on "Competitive Restriction Exception"? (This category includes the exceptions or carveouts to Non-Compete, Exclusivity and No-Solicit of Customers above.)'),
    Category('Non-Compete',
             'Is there a restriction on the ability of a party to compete with the counterparty or operate in a certain geography or business or technology sector?'),
    Category('Exclusivity',
             'Is there an exclusive dealing commitment with the counterparty?'),
    Category('No-Solicit Of Customers',
             'Is a party restricted from contracting or soliciting customers or partners of the counterparty, whether during the contract or after the contract ends (or both)?'),
    Category('No-Solicit Of Employees',
             'Is there a restriction on a party’s soliciting or hiring employees and/or contractors from the counterparty, whether during the contract or after the contract ends (or both)?'),
    Category('Non-Disparagement',
             'Is there a requirement on a party not to disparage the counterparty?'),
    Category('Termination For Convenience',
             'Can a party terminate this contract without cause (solely by giving a notice and allowing a waiting period to expire)?'),
    Category('Rofr/Rofo/Rofn',
             'Is there a clause granting one party a right of first refusal, right of first offer or right of first negotiation to purchase, license, market, or distribute equity interest, technology, assets, products or services?'),
    Category('Change Of Control',
             'Does one party have the right to terminate or is consent or notice required of the counterparty if such party undergoes a change of control, such as a merger, stock sale, transfer of all or substantially all of its assets or business, or assignment by operation of law?'),
    Category('Anti-Assignment',
             'Is consent or notice required of a party if the contract is assigned to a third party?'),
    Category('Revenue/Profit Sharing',
             'Is one party required to share revenue or profit with the counterparty for any technology, goods, or services?'),
    Category('Price Restrictions',
             'Is there a restriction on the ability of a party to raise or reduce prices of technology, goods, or services provided?'),
    Category('Minimum Commitment',
             'Is there a minimum order size or minimum amount or units per-time period that one party must buy from the counterparty under the contract?'),
    Category('Volume Restriction',
             'Is there a fee increase or consent requirement, etc. if one party’s use of the product/services exceeds certain threshold?'),
    Category('Ip Ownership Assignment',
             'Does intellectual property created by one party become the property of the counterparty, either per the terms of the contract or upon the occurrence of certain events?'),
    Category('Joint Ip Ownership',
             'Is there any clause providing for joint or shared ownership of intellectual property between the parties to the contract?'),
    Category('License Grant',
             'Does the contract contain a license granted by one party to its counterparty?'),
    Category('Non-Transferable License',
             'Does the contract limit the ability of a party to transfer the license being granted to a third party?'),
    Category('Affiliate License-Licensor',
             'Does the contract contain a license grant by affiliates of the licensor or that includes intellectual property of affiliates of the licensor?'),
    Category('Affiliate License-Licensee',
             'Does the contract contain a license grant to a licensee (incl. sublicensor) and the affiliates of such licensee/sublicensor?'),
    Category('Unlimited/All-You-Can-Eat-License',
             'Is there a clause granting one party an “enterprise,” “all you can eat” or unlimited usage license?'),
    Category('Irrevocable Or Perpetual License',
             'Does the contract contain a license grant that is irrevocable or perpetual?'),
    Category('Source Code Escrow',
             'Is one party required to deposit its source code into escrow with a third party, which can be released to the counterparty upon the occurrence of certain events (bankruptcy, insolvency, etc.)?'),
    Category('Post-Termination Services',
             'Is a party subject to obligations after the termination or expiration of a contract, including any post-termination transition, payment, transfer of IP, wind-down, last-buy, or similar commitments?'),
    Category('Audit Rights',
             'Does a party have the right to audit the books, records, or physical locations of the counterparty to ensure compliance with the contract?'),
    Category('Uncapped Liability',
             'Is a party’s liability uncapped upon the breach of its obligation in the contract?'),
    Category('Cap On Liability',
             'Does the contract include a cap on liability upon the breach of a party’s obligation?'),
    Category('Liquidated Damages',
             'Does the contract contain a clause that would award either party liquidated damages for breach or a fee upon the termination of a contract (termination fee)?'),
    Category('Warranty Duration',
             'What is the duration of any warranty against defects or errors in technology, products, or services provided under the contract?'),
    Category('Insurance',
             'Is there a requirement for insurance that must be maintained by one party for the benefit of the counterparty?'),
    Category('Covenant Not To Sue',
             'Is a party restricted from contesting the validity of the counterparty’s ownership of intellectual property or otherwise bringing a claim against the counterparty for matters unrelated to the contract?'),
    Category('Third Party Beneficiary',
             'Is there a non-contracting party who is a beneficiary to some or all of the clauses in the contract and therefore can enforce its rights against a contracting party?'),
)
BY_NAME = {c.name: c for c in CATEGORIES}
BY_KEY = {c.key: c for c in CATEGORIES}


def jaccard(gold: str, text: str) -> float:
    """CUAD's word overlap of two passages (its evaluate.py): words split at spaces after removing . , ; : and
    lower-casing, with '/' as a space; |common| / |all|."""
    def words(s: str) -> set[str]:
        for mark in ".,;:":
            s = s.replace(mark, "")
        return set(s.lower().replace("/", " ").split())

    g, t = words(gold), words(text)
    return len(g & t) / len(g | t) if g | t else 0.0


def matches(gold: str, text: str, parties: bool = False) -> bool:
    """Whether CUAD counts `text` as finding the marked passage `gold`: word overlap of at least half, or, for the
    parties (`parties`), `gold` inside `text`."""
    return jaccard(gold, text) >= 0.5 or (parties and gold in text)
